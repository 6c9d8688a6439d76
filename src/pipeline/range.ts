import { DateTime, Duration } from '../time/luxon.ts';
import { ConveyError } from '../errors.ts';
import type { Window } from '../time/window.ts';
import { addMicros, fromEpochMillis, parseFixedDuration, parseInstant, type Instant } from '../time/instant.ts';

/**
 * A range bound from the command line. A date (`2026-03-01`) is the start of that day in `zone`,
 * so `--from 2026-03-01 --to 2026-04-01` is exactly March there (`--to` is exclusive). A time
 * with an offset (`2026-03-01T06:00:00Z`) is that instant; without one, it is read in `zone`.
 */
export function parseBound(text: string, zone: string, flag: string): Instant {
  if (/[zZ]$|[+-]\d{2}(:?\d{2})?$/.test(text.trim()) && text.includes('T')) {
    const instant = parseInstant(text);
    if (instant) return instant;
  }
  const local = DateTime.fromISO(text.trim(), { zone });
  if (!local.isValid) {
    throw new ConveyError('USAGE', `${flag} ${JSON.stringify(text)} is not a date or time`, {
      hint: `Use a date (2026-03-01, a whole day in ${zone}) or a time (2026-03-01T06:00:00Z).`,
    });
  }
  return fromEpochMillis(local.toMillis());
}

export function parseRange(from: string | undefined, to: string | undefined, zone: string): Window {
  if (!from || !to) throw new ConveyError('USAGE', 'a range needs both --from and --to', { hint: 'e.g. --from 2026-03-01 --to 2026-04-01 (the day --to names is not included)' });
  if (!DateTime.local().setZone(zone).isValid) {
    throw new ConveyError('USAGE', `--tz ${JSON.stringify(zone)} is not an IANA time zone`, { hint: 'e.g. --tz Europe/Berlin, --tz America/New_York, --tz UTC' });
  }
  const window = { start: parseBound(from, zone, '--from'), end: parseBound(to, zone, '--to') };
  if (window.end <= window.start) {
    throw new ConveyError('USAGE', `--to (${window.end}) must be after --from (${window.start})`, { hint: '--to is exclusive: --from 2026-03-01 --to 2026-03-02 is one day.' });
  }
  return window;
}

/**
 * Cuts a range into chunks. Whole days (P1D, P7D, P1W) follow the calendar in `zone`, so a chunk
 * is a local day even across a daylight-saving change (23 or 25 hours); hours and minutes are
 * fixed lengths.
 */
export function chunkRange(range: Window, chunk: string, zone: string): Window[] {
  const duration = Duration.fromISO(chunk);
  const fixed = parseFixedDuration(chunk);
  if (!duration.isValid || fixed === undefined || fixed <= 0n) {
    throw new ConveyError('USAGE', `--chunk ${JSON.stringify(chunk)} must be an ISO 8601 duration in days, hours or minutes`, { hint: 'e.g. --chunk P1D (default), --chunk PT6H' });
  }
  const calendar = duration.hours === 0 && duration.minutes === 0 && duration.seconds === 0 && duration.milliseconds === 0;
  const chunks: Window[] = [];
  let start = range.start;
  while (start < range.end) {
    let end: Instant;
    if (calendar) {
      const local = DateTime.fromMillis(Date.parse(start), { zone });
      // The first chunk ends at the next calendar boundary, so later chunks align to local days.
      end = fromEpochMillis(local.startOf('day').plus(duration).toMillis());
      if (end <= start) end = addMicros(start, fixed);
    } else {
      end = addMicros(start, fixed);
    }
    if (end > range.end) end = range.end;
    chunks.push({ start, end });
    start = end;
  }
  return chunks;
}
