import type { AlertSettings } from '../config/alerts.ts';
import type { Queryable } from '../state/db.ts';
import { newRejectReasons, recordWarnings, successfulRunsBefore } from '../state/sql/history.ts';
import type { RunMode, RunStatus } from '../state/sql/runs.ts';
import { checkRejectedShare, checkRowsRead, checkWatermarkLag, newReasonWarning, type RunFacts } from './checks.ts';
import { comparableRuns } from './comparable.ts';
import type { RunWarning, Verdict } from './warning.ts';

/**
 * The history read for one verdict, newest first: 8 weeks of a job run every 16 minutes. Measured
 * (bench/verdict-history.mjs, PostgreSQL, the shared 2-core machine): 1,344 runs (an hourly job)
 * 24–78 ms, 5,000 runs 72–134 ms, 20,000 runs 290–470 ms. A job run more often than every 16
 * minutes still has days of history, enough to compare by time of day.
 */
const MAX_HISTORY_RUNS = 5_000;

export interface JudgedRun extends RunFacts {
  job: string;
  runId: number;
  mode: RunMode;
  status: RunStatus;
  timezone: string;
}

/**
 * The verdict on one finished run: compared with the job's recent successful runs of the same
 * mode, what is unusual. Incremental runs and backfills read a window and get every check (the
 * watermark only for runs, which move it); retries and replays read none and get no verdict, nor
 * does an interrupted run (its window was cut short). The warnings are stored with the run.
 */
export async function judgeRun(db: Queryable, run: JudgedRun, alerts: AlertSettings): Promise<Verdict> {
  if (!alerts.enabled || (run.mode !== 'run' && run.mode !== 'backfill') || run.status === 'interrupted') return { warnings: [], baseline: null };
  const history = await successfulRunsBefore(db, run.job, run.mode, { runId: run.runId, historyMs: alerts.historyMs, limit: MAX_HISTORY_RUNS, timezone: run.timezone });
  const lag = run.mode === 'run' ? alerts.watermarkLag : { ...alerts.watermarkLag, enabled: false };
  const warnings: RunWarning[] = [];
  let verdict: Verdict;
  if (history.length < alerts.minRuns) {
    // Too young to have a usual: only a fixed limit can be checked.
    if (lag.maxMs !== undefined) warnings.push(...checkWatermarkLag(run, undefined, lag));
    verdict = { warnings, baseline: { runs: history.length, comparable: 0, matched: 'all', needed: alerts.minRuns } };
  } else {
    const reference = comparableRuns(run.window, history, run.timezone);
    for (const warning of [checkRowsRead(run, reference, alerts.rowsRead), checkRejectedShare(run, reference, alerts.rejectedShare)]) {
      if (warning) warnings.push(warning);
    }
    if (alerts.newRejectReason.enabled && run.rejected > 0) {
      const fresh = newReasonWarning(await newRejectReasons(db, run.job, run.runId));
      if (fresh) warnings.push(fresh);
    }
    warnings.push(...checkWatermarkLag(run, reference, lag));
    verdict = { warnings, baseline: { runs: history.length, comparable: reference.runs.length, matched: reference.matched } };
  }
  await recordWarnings(db, run.runId, verdict.warnings);
  return verdict;
}
