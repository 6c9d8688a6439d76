import { hash } from 'node:crypto';

/** convey's UUID v5 namespace. Never change it: every uuid already sent depends on it. */
const NAMESPACE = Buffer.from('57d31011-7aca-47ae-b64a-15695262de71'.replaceAll('-', ''), 'hex');

/**
 * The Event API's `uuid` for a conversion: a UUID v5 (RFC 9562: SHA-1 of namespace and name) of
 * its idempotency key, so a resend (after a crash, a retry, or a deliberate --resend) carries the
 * same uuid and Optimizely keeps one copy. Written out rather than taken from the `uuid` package:
 * its v5 costs a createHash object per call, about 1 µs of the 16 µs per conversion measured on
 * the 1M-conversion benchmark; the one-shot crypto.hash halves that. test/destinations.test.ts
 * checks it against the `uuid` package.
 */
export function conversionUuid(destinationKey: string, event: string, conversionId: string): string {
  const name = destinationKey + '\n' + event + '\n' + conversionId;
  // The namespace and the name in one reused buffer: Buffer.from and Buffer.concat per call cost
  // about 0.6 µs of the 1.6 measured for this function on 300,000 conversions (now 0.8).
  const data = name.length * 3 <= scratch.length - NAMESPACE.length
    ? scratch.subarray(0, NAMESPACE.length + scratch.write(name, NAMESPACE.length, 'utf8'))
    : Buffer.concat([NAMESPACE, Buffer.from(name)]);
  const hex = hash('sha1', data, 'hex');
  // Version 5 in the 13th hex digit, the RFC variant (binary 10xx) in the 17th.
  return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-5' + hex.slice(13, 16) + '-' + VARIANT[hex.charCodeAt(16)] + hex.slice(17, 20) + '-' + hex.slice(20, 32);
}

/** Room for the namespace and a name of up to ~1,300 characters; longer names take Buffer.concat. */
const scratch = Buffer.alloc(4096);
NAMESPACE.copy(scratch, 0);

/** The variant's hex digit for each hex digit's character code: its two high bits set to 10. */
const VARIANT: string[] = [];
for (let d = 0; d < 16; d++) VARIANT[d.toString(16).charCodeAt(0)] = ((d & 0x3) | 0x8).toString(16);
