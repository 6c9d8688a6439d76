import { Duration } from 'luxon';

/**
 * A point in time with PostgreSQL's full microsecond precision, as a fixed-width UTC string:
 * `2026-03-01T12:00:00.123456Z`. A JS `Date` keeps milliseconds only, which would make a keyset
 * page or a watermark re-read or skip rows that differ in the last three digits; strings of one
 * width also sort chronologically, so they compare with `<` and bind to SQL as they are.
 */
export type Instant = string & { readonly __instant: unique symbol };

const TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/;

/**
 * Reads PostgreSQL's text output (`2026-03-01 12:00:00.123456+00`, any offset), ISO 8601 with `Z`
 * or an offset, a `timestamp without time zone` (read as UTC) or a date (its midnight, UTC).
 * Returns undefined when the value is not a time.
 */
export function parseInstant(value: unknown): Instant | undefined {
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? undefined : fromEpochMillis(value.getTime());
  }
  if (typeof value !== 'string') return undefined;
  const m = TEXT.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  // Date.UTC rolls 2026-02-31 over into March; a calendar-invalid input is not a time.
  if (
    Number.isNaN(ms) ||
    check.getUTCFullYear() !== Number(y) ||
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59
  ) {
    return undefined;
  }
  const micros = BigInt(ms) * 1000n + BigInt((frac + '000000').slice(0, 6));
  return fromMicros(micros - offsetMicros(zone));
}

function offsetMicros(zone: string | undefined): bigint {
  if (!zone || zone === 'Z' || zone === 'z') return 0n;
  const sign = zone.startsWith('-') ? -1n : 1n;
  const digits = zone.slice(1).replaceAll(':', '');
  const hours = BigInt(digits.slice(0, 2));
  const minutes = BigInt(digits.slice(2, 4) || '0');
  const seconds = BigInt(digits.slice(4, 6) || '0');
  return sign * ((hours * 3600n + minutes * 60n + seconds) * 1_000_000n);
}

export function fromMicros(micros: bigint): Instant {
  const ms = micros >= 0n ? micros / 1000n : -((-micros + 999n) / 1000n);
  const sub = micros - ms * 1000n; // 0..999
  const iso = new Date(Number(ms)).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${sub.toString().padStart(3, '0')}Z` as Instant;
}

export function fromEpochMillis(ms: number): Instant {
  return fromMicros(BigInt(Math.floor(ms)) * 1000n);
}

export function toMicros(instant: Instant): bigint {
  const ms = Date.parse(instant.slice(0, 23) + 'Z');
  return BigInt(ms) * 1000n + BigInt(instant.slice(23, 26));
}

/** Epoch milliseconds, truncated: the Event API's `timestamp`. */
export function toEpochMillis(instant: Instant): number {
  return Date.parse(instant.slice(0, 23) + 'Z');
}

/** Epoch seconds, truncated: the classic endpoint's `time`. */
export function toEpochSeconds(instant: Instant): number {
  return Math.floor(toEpochMillis(instant) / 1000);
}

export function addMicros(instant: Instant, delta: bigint): Instant {
  return fromMicros(toMicros(instant) + delta);
}

export function minInstant(a: Instant, b: Instant): Instant {
  return a < b ? a : b;
}

export function maxInstant(a: Instant, b: Instant): Instant {
  return a > b ? a : b;
}

/**
 * An ISO 8601 duration of fixed length (`PT2H`, `PT10M`, `P1D`) in microseconds. Months and
 * years have no fixed length, so a lookback of `P1M` would mean different windows in different
 * months: they are refused rather than guessed.
 */
export function parseFixedDuration(text: string): bigint | undefined {
  const duration = Duration.fromISO(text);
  if (!duration.isValid) return undefined;
  if (duration.years || duration.quarters || duration.months) return undefined;
  const ms = duration.as('milliseconds');
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return BigInt(Math.round(ms * 1000));
}
