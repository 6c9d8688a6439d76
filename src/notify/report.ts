import { describeCause } from '../delivery/failure.ts';
import type { FailureGroup } from '../pipeline/failures.ts';
import type { RunSummary } from '../pipeline/run-job.ts';
import type { RunWarning } from '../verdict/warning.ts';
import type { FinishedRun } from './notifier.ts';

/**
 * What every channel says about a run, in words: the title, the one line that matters, the
 * counts, the causes of failure and the warnings. Markdown, Slack and plain text are built from
 * these, so the channels never disagree.
 */

export const failuresOf = (summary: RunSummary | undefined): FailureGroup[] => summary?.failures ?? [];

export const warningsOf = (run: FinishedRun): RunWarning[] => run.summary?.warnings ?? [];

export type RunOutcome = 'succeeded' | 'warnings' | 'failed' | 'interrupted' | 'held';

/** How the run ended, from a channel's point of view. */
export function outcomeOf(run: FinishedRun): RunOutcome {
  if (run.error) {
    if (run.error.code === 'JOB_LOCKED') return 'held';
    if (run.error.code === 'INTERRUPTED') return 'interrupted';
    return 'failed';
  }
  const status = run.summary?.status;
  if (status === 'interrupted') return 'interrupted';
  if (status !== 'succeeded') return 'failed';
  return warningsOf(run).length ? 'warnings' : 'succeeded';
}

export const n = (value: number): string => value.toLocaleString('en-US');

/** "convey run orders failed (exit 1)" */
export function titleOf(run: FinishedRun): string {
  const outcome = outcomeOf(run);
  const what =
    outcome === 'succeeded' ? 'succeeded'
    : outcome === 'warnings' ? `succeeded with ${warningsOf(run).length} warning${warningsOf(run).length === 1 ? '' : 's'}`
    : outcome === 'held' ? 'did not start: another run holds the job'
    : outcome === 'interrupted' ? 'was stopped'
    : 'failed';
  return `${run.command} ${what}${run.exitCode ? ` (exit ${run.exitCode})` : ''}`;
}

/** The one line an on-call engineer reads first; undefined for a run with nothing to say. */
export function headline(run: FinishedRun): string | undefined {
  if (run.error) return run.error.message.split('\n')[0];
  const summary = run.summary;
  if (!summary) return undefined;
  if (summary.headline) return summary.headline;
  const first = failuresOf(summary)[0];
  if (summary.failed > 0) return `${n(summary.failed)} conversion${summary.failed === 1 ? '' : 's'} failed after every retry${first ? `: ${describeCause(first)}` : ''}`;
  if (summary.status === 'failed') return `${n(summary.rejected)} rows rejected, more than the job allows`;
  return undefined;
}

/** "read 243 · sent 241 · already sent 0 · rejected 2 · failed 0 · 1.2 s" */
export function countsLine(summary: RunSummary): string {
  const parts = [`read ${n(summary.read)}`, `sent ${n(summary.sent)}`, `already sent ${n(summary.alreadySent)}`, `rejected ${n(summary.rejected)}`, `failed ${n(summary.failed)}`];
  if (summary.deferred) parts.push(`deferred ${n(summary.deferred)}`);
  parts.push(`${(summary.durationMs / 1000).toFixed(1)} s`);
  return parts.join(' · ');
}

/** "10 × the endpoint failed every attempt (HTTP 500) at https://…: «answer». What to do." */
export function failureLine(f: FailureGroup): string {
  return `${n(f.conversions)} × ${describeCause(f)} at ${f.endpoint}${f.message ? `: «${f.message.split('\n')[0]}»` : ''}. ${f.action}`;
}

export const warningLine = (warning: RunWarning): string => `${warning.check}: ${warning.message}`;

/** The whole outcome as plain text, for a ping's body or a log: title, headline, counts, causes, warnings. */
export function plainText(run: FinishedRun): string {
  const lines = [titleOf(run)];
  const first = headline(run);
  if (first) lines.push(first);
  if (run.error?.hint) lines.push(run.error.hint);
  if (run.summary) lines.push(countsLine(run.summary));
  for (const failure of failuresOf(run.summary)) lines.push(`failure: ${failureLine(failure)}`);
  for (const warning of warningsOf(run)) lines.push(`warning: ${warningLine(warning)}`);
  return lines.join('\n') + '\n';
}
