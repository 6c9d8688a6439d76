import type { AlertSettings } from '../config/alerts.ts';
import type { HistoryRun } from '../state/sql/history.ts';
import { describeDuration } from '../time/describe.ts';
import type { Comparable } from './comparable.ts';
import type { RunWarning } from './warning.ts';

/** The run being judged, as plain figures (times in epoch ms). */
export interface RunFacts {
  window: { startMs: number; endMs: number };
  read: number;
  rejected: number;
  startedAtMs: number;
  endedAtMs: number;
  watermarkBeforeMs: number | null;
  watermarkAfterMs: number | null;
}

const HOUR = 3_600_000;
const n = (value: number): string => Math.round(value).toLocaleString('en-US');
const pct = (share: number): string => `${(share * 100).toFixed(share < 0.001 ? 2 : 1)}%`;

/**
 * The usual value among comparable runs. Matched by season, the median is the usual, and one
 * odd run does not move it (after a lasting change, it moves once half the comparable runs show
 * it). Unmatched (the first weeks of a job), the runs mix busy and quiet days, so the range
 * counts: "low" is the quietest run seen, "high" the busiest, and only a figure outside
 * everything seen (by the check's factor) is a warning. That keeps the first Sunday of a weekday
 * business from being reported as a collapse. Runs this check already called unusual are left
 * out of the range, or one night of zero rows would make every later one look usual.
 */
export function usual(values: ReadonlyArray<{ value: number; flagged: boolean }>, seasonal: boolean): { median: number; low: number; high: number } {
  const sorted = values.map((v) => v.value).sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  if (seasonal) return { median, low: median, high: median };
  const usualOnes = values.filter((v) => !v.flagged).map((v) => v.value);
  const range = usualOnes.length ? usualOnes : sorted;
  return { median, low: Math.min(...range), high: Math.max(...range) };
}

function describeReference(reference: Comparable): string {
  const count = `${reference.runs.length} run${reference.runs.length === 1 ? '' : 's'}`;
  if (reference.matched === 'week') return `${count} at this time of the week`;
  if (reference.matched === 'day') return `${count} at this time of day`;
  return `the range of ${count}`;
}

const hoursOf = (r: { windowStartMs: number; windowEndMs: number }): number => (r.windowEndMs - r.windowStartMs) / HOUR;

/**
 * low_volume and high_volume. Rows are compared per hour of window, so a run after a missed
 * night (a window twice as long, twice the rows) is not unusual, and neither is the first run's
 * long window once it is in the history.
 */
export function checkRowsRead(run: RunFacts, reference: Comparable, settings: AlertSettings['rowsRead']): RunWarning | undefined {
  const hours = hoursOf({ windowStartMs: run.window.startMs, windowEndMs: run.window.endMs });
  const rates = reference.runs.filter((r) => hoursOf(r) > 0).map((r) => ({ value: r.read / hoursOf(r), flagged: r.checks.includes('low_volume') || r.checks.includes('high_volume') }));
  if (!settings.enabled || hours <= 0 || rates.length === 0) return undefined;
  const u = usual(rates, reference.matched !== 'all');
  const expected = u.median * hours;
  // A job whose window holds a few dozen rows swings by more than 5× for ordinary reasons.
  if (expected < settings.minRows) return undefined;
  const about = `usually about ${n(expected)} for a window this long (${describeReference(reference)})`;
  const low = settings.below * u.low * hours;
  if (run.read < low) {
    return { check: 'low_volume', message: `read ${n(run.read)} rows, ${about}; fewer than ${n(low)} is unusual`, observed: run.read, usual: Math.round(expected), threshold: Math.round(low) };
  }
  const high = settings.above * u.high * hours;
  if (run.read > high) {
    return { check: 'high_volume', message: `read ${n(run.read)} rows, ${about}; more than ${n(high)} is unusual`, observed: run.read, usual: Math.round(expected), threshold: Math.round(high) };
  }
  return undefined;
}

/** rejected_share: a mapping or an upstream change that breaks rows, well above the job's own usual. */
export function checkRejectedShare(run: RunFacts, reference: Comparable, settings: AlertSettings['rejectedShare']): RunWarning | undefined {
  if (!settings.enabled || run.read === 0 || run.rejected < settings.minRejects) return undefined;
  const shares = reference.runs.filter((r) => r.read > 0).map((r) => ({ value: r.rejected / r.read, flagged: r.checks.includes('rejected_share') }));
  if (shares.length === 0) return undefined;
  const u = usual(shares, reference.matched !== 'all');
  const share = run.rejected / run.read;
  const threshold = Math.max(settings.above, settings.times * u.high);
  if (share <= threshold) return undefined;
  return {
    check: 'rejected_share',
    message: `rejected ${n(run.rejected)} of ${n(run.read)} rows (${pct(share)}), usually ${pct(u.median)} (${describeReference(reference)}); above ${pct(threshold)} is unusual`,
    observed: share,
    usual: u.median,
    threshold,
  };
}

/**
 * watermark_lag, at both ends of the run. At its start, the lag is the gap since the last run
 * that finished its window: a long one means runs were missed (the scheduler stopped, or runs
 * found the job held and sent nothing). At its end, the lag is settle plus the run's own
 * duration, or more if the run did not reach the end of its window: a slow run falls behind.
 * Each is compared with the same figure of comparable runs (a weekday-only schedule makes every
 * Monday's gap three days, and its earlier Mondays say so), or with a fixed `max`.
 */
export function checkWatermarkLag(run: RunFacts, reference: Comparable | undefined, settings: AlertSettings['watermarkLag']): RunWarning[] {
  if (!settings.enabled) return [];
  const warnings: RunWarning[] = [];
  const ends = [
    {
      lag: run.watermarkBeforeMs === null ? null : run.startedAtMs - run.watermarkBeforeMs,
      past: (r: HistoryRun) => (r.watermarkBeforeMs === null ? null : { value: r.startedAtMs - r.watermarkBeforeMs, flagged: r.checks.includes('watermark_lag') }),
      what: (lag: string) => `the watermark was ${lag} behind when the run started`,
      why: 'runs were missed, or ended before their window did',
    },
    {
      lag: run.watermarkAfterMs === null ? null : run.endedAtMs - run.watermarkAfterMs,
      past: (r: HistoryRun) => (r.watermarkAfterMs === null ? null : { value: r.finishedAtMs - r.watermarkAfterMs, flagged: r.checks.includes('watermark_lag') }),
      what: (lag: string) => `the watermark is ${lag} behind now`,
      why: 'the run was slow, or did not reach the end of its window',
    },
  ];
  for (const end of ends) {
    if (end.lag === null) continue;
    let threshold: number;
    let usualText = '';
    let usualMs: number | undefined;
    if (settings.maxMs !== undefined) {
      threshold = settings.maxMs;
    } else {
      const past = (reference?.runs ?? []).map(end.past).filter((v) => v !== null);
      if (past.length === 0) continue;
      const u = usual(past, reference!.matched !== 'all');
      // Twice the usual, and never less than an hour over it: a nightly run 20 minutes late is not news.
      threshold = Math.max(settings.times * u.high, u.high + HOUR);
      usualMs = u.median;
      usualText = `, usually ${describeDuration(u.median)} (${describeReference(reference!)})`;
    }
    if (end.lag > threshold) {
      warnings.push({
        check: 'watermark_lag',
        message: `${end.what(describeDuration(end.lag))}${usualText}; more than ${describeDuration(threshold)} means ${end.why}`,
        observed: Math.round(end.lag / 1000),
        ...(usualMs === undefined ? {} : { usual: Math.round(usualMs / 1000) }),
        threshold: Math.round(threshold / 1000),
      });
    }
  }
  return warnings;
}

/** new_reject_reason: rows rejected for a reason this job never had. */
export function newReasonWarning(reasons: ReadonlyArray<{ reasonCode: string; rows: number; example: string }>): RunWarning | undefined {
  if (reasons.length === 0) return undefined;
  const list = reasons.map((r) => `${r.reasonCode} (${n(r.rows)} row${r.rows === 1 ? '' : 's'}: ${r.example})`).join('; ');
  return {
    check: 'new_reject_reason',
    message: `rows rejected for a reason this job never had before: ${list}`,
    observed: reasons.reduce((sum, r) => sum + r.rows, 0),
    reasons: reasons.map((r) => r.reasonCode),
  };
}
