import type { AlertSettings } from '../config/alerts.ts';
import type { Queryable } from '../state/db.ts';
import { newRejectReasons, recordWarnings, successfulRunsBefore } from '../state/sql/history.ts';
import type { RunMode, RunStatus } from '../state/sql/runs.ts';
import { checkRejectedShare, checkRowsRead, checkWatermarkLag, newReasonWarning, type RunFacts } from './checks.ts';
import { comparableRuns } from './comparable.ts';
import type { RunWarning, Verdict } from './warning.ts';

/** Enough for 8 weeks of a job run every 2.5 minutes; each row is a few numbers. */
const MAX_HISTORY_RUNS = 20_000;

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
  const history = await successfulRunsBefore(db, run.job, run.mode, { runId: run.runId, historyMs: alerts.historyMs, limit: MAX_HISTORY_RUNS });
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
