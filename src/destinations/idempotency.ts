import { v5 as uuidv5 } from 'uuid';

/** convey's UUID v5 namespace. Never change it: every uuid already sent depends on it. */
const NAMESPACE = '57d31011-7aca-47ae-b64a-15695262de71';

/**
 * The Event API's `uuid` for a conversion: a UUID v5 of its idempotency key, so a resend (after a
 * crash, a retry, or a deliberate --resend) carries the same uuid and Optimizely keeps one copy.
 */
export function conversionUuid(destinationKey: string, event: string, conversionId: string): string {
  return uuidv5(`${destinationKey}\n${event}\n${conversionId}`, NAMESPACE);
}
