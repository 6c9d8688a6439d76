import { DateTime } from '../time/luxon.ts';
import type { HistoryRun } from '../state/sql/history.ts';

const MINUTE = 60_000;
const DAY_MIN = 24 * 60;
const WEEK_MIN = 7 * DAY_MIN;

/**
 * Seasonal figures (weekday and hour) are compared with runs at the same point of the cycle once
 * there are this many of them: three nightly Sundays is three weeks of history. With fewer, one
 * odd run (a holiday) would be the whole reference.
 */
export const MIN_COMPARABLE = 3;

export interface Comparable {
  runs: HistoryRun[];
  /** 'week' and 'day': runs at the same time of the week / of the day; 'all': not enough of them. */
  matched: 'week' | 'day' | 'all';
}

/**
 * The runs a window should be compared with. A shop's Sunday is not its Monday, and an hourly
 * job's 03:00 is not its 15:00: a window is compared with the runs whose window sits at the same
 * time of the week (its midpoint, in the job's time zone, within half its length and at least an
 * hour), then of the day, then with every run. A nightly window (about a day) matches the same
 * weekday; a window of several days matches every run, as it should (it holds every weekday).
 */
export function comparableRuns(window: { startMs: number; endMs: number }, runs: readonly HistoryRun[], zone: string): Comparable {
  const toleranceMin = Math.max(60, (window.endMs - window.startMs) / MINUTE / 2);
  const here = weekMinute((window.startMs + window.endMs) / 2, zone);
  for (const period of [WEEK_MIN, DAY_MIN]) {
    if (toleranceMin * 2 >= period) continue; // the window spans the whole cycle: every run matches
    const near = runs.filter((r) => circularDistance(here % period, r.midWeekMinute % period, period) <= toleranceMin);
    const matched = period === WEEK_MIN ? 'week' : 'day';
    if (near.length >= MIN_COMPARABLE) return { runs: near, matched };
  }
  return { runs: [...runs], matched: 'all' };
}

/** Minutes into the local week (Monday 00:00 = 0), as the history query computes them for past runs. */
export function weekMinute(ms: number, zone: string): number {
  const t = DateTime.fromMillis(ms, { zone });
  return (t.weekday - 1) * DAY_MIN + t.hour * 60 + t.minute;
}

function circularDistance(a: number, b: number, period: number): number {
  const d = Math.abs(a - b) % period;
  return Math.min(d, period - d);
}
