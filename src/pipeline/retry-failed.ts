import { executeRun, type RunJobDeps, type RunSummary } from './run-job.ts';
import { sendOpenConversions } from './send-open.ts';

/**
 * `convey retry`: sends now, from the ledger, the job's conversions that failed, were deferred, or
 * were left in doubt. Reads no new rows: the source is not queried at all.
 */
export function retryFailed(deps: Omit<RunJobDeps, 'source'>): Promise<RunSummary> {
  return executeRun(deps, {
    mode: 'retry',
    async body(run) {
      run.addFailures((await sendOpenConversions(run.open)).failures);
    },
  });
}
