/**
 * What a run did, conversion by conversion. Every row read lands in exactly one of sent (counted
 * as `fromSource` within sent), alreadySent, rejected, failed, deferred or skipped, so
 * read = sentFromSource + alreadySent + rejected + failedFromSource + deferredFromSource + skipped.
 */
export interface RunCounts {
  /** Rows the mapping returned in the window. */
  read: number;
  /** Conversions delivered in this run (from the source, retried, or resent after an interruption). */
  sent: number;
  /** Rows whose conversion the ledger already holds as sent. */
  alreadySent: number;
  /** Rows recorded as rejects (malformed, duplicated, refused by the endpoint). */
  rejected: number;
  /** Conversions whose sending failed after every retry; the next run sends them first. */
  failed: number;
  /** Conversions claimed but not sent because the run was stopped; the next run sends them first. */
  deferred: number;
  /** Rows whose conversion another run holds, or which this run's retry step already handled. */
  skipped: number;
  /** Of sent + failed: conversions taken from earlier failures. */
  retried: number;
  /** Of sent + failed: conversions left in doubt by an interrupted run, sent again. */
  resent: number;
  /** HTTP requests made (every attempt). */
  requests: number;
}

export const zeroCounts = (): RunCounts => ({
  read: 0,
  sent: 0,
  alreadySent: 0,
  rejected: 0,
  failed: 0,
  deferred: 0,
  skipped: 0,
  retried: 0,
  resent: 0,
  requests: 0,
});

export function addCounts(into: RunCounts, more: RunCounts): RunCounts {
  for (const key of Object.keys(into) as Array<keyof RunCounts>) into[key] += more[key];
  return into;
}
