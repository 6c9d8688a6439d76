import { replayableRejects, replayOutcome } from '../state/sql/rejects.ts';
import { addMicros, parseInstant } from '../time/instant.ts';
import { executeRun, type RunJobDeps, type RunSummary } from './run-job.ts';
import { sendWindow } from './send-window.ts';

/** Conversion ids per source query: bound as one array parameter, so the SQL stays short. */
const IDS_PER_QUERY = 1000;

/**
 * `convey rejects <job> --replay`: after a mapping fix, reads the rejected conversion ids again
 * through the current mapping (over the span of time they were read from) and sends those that
 * now pass. Their rejects are resolved; rows still wrong are rejected again with today's reason.
 */
export function replayRejects(deps: RunJobDeps, options: { reasonCode?: string }): Promise<RunSummary> {
  let ids: string[] = [];
  let notReplayable = 0;
  return executeRun(deps, {
    mode: 'replay',
    async window() {
      const found = await replayableRejects(deps.db, deps.job.name, options.reasonCode);
      ids = found.ids;
      notReplayable = found.notReplayable;
      const start = parseInstant(found.from) ?? parseInstant(new Date(deps.clock.now()).toISOString())!;
      const end = found.to ? addMicros(parseInstant(found.to)!, 1n) : start;
      return { start, end };
    },
    async body(run) {
      for (let i = 0; i < ids.length && !deps.signal.aborted; i += IDS_PER_QUERY) {
        const result = await sendWindow(run.send!, { window: run.window!, advanceWatermark: false, conversionIds: ids.slice(i, i + IDS_PER_QUERY), resolveRejects: 'passing' });
        run.addFailures(result.failures);
      }
      const { resolved, rejectedAgain } = await replayOutcome(deps.db, deps.job.name, run.runId);
      Object.assign(run.details, { replayable: ids.length, notReplayable, resolved, rejectedAgain, notFound: Math.max(0, ids.length - resolved - rejectedAgain) });
    },
  });
}
