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
  const digest = hash('sha1', Buffer.concat([NAMESPACE, Buffer.from(`${destinationKey}\n${event}\n${conversionId}`)]), 'buffer');
  digest[6] = (digest[6]! & 0x0f) | 0x50; // version 5
  digest[8] = (digest[8]! & 0x3f) | 0x80; // RFC variant
  const hex = digest.toString('hex', 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
