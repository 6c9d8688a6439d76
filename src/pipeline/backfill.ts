import type { Window } from '../time/window.ts';
import { finishBackfill, finishChunk, openBackfill } from '../state/sql/backfills.ts';
import { parseFixedDuration } from '../time/instant.ts';
import { zeroCounts, addCounts, type RunCounts } from './counts.ts';
import { chunkRange } from './range.ts';
import { executeRun, type RunJobDeps, type RunSummary } from './run-job.ts';
import { sendOpenConversions } from './send-open.ts';
import { sendWindow } from './send-window.ts';

export interface BackfillOptions {
  range: Window;
  /** ISO duration of a chunk; whole days follow the calendar in `zone`. */
  chunk: string;
  zone: string;
  /** Send again conversions the ledger holds as sent (same uuid and timestamp for the Event API). */
  resend: boolean;
  onChunk?: (index: number, total: number, chunk: Window) => void;
}

/**
 * `convey backfill`: sends a bounded range again through the current mapping, chunk by chunk,
 * without touching the job's watermark. Each finished chunk is recorded, so the same command
 * after an interruption resumes at the first unfinished chunk; the ledger skips what was sent.
 */
export function backfillJob(deps: RunJobDeps, options: BackfillOptions): Promise<RunSummary> {
  const chunks = chunkRange(options.range, options.chunk, options.zone);
  return executeRun(deps, {
    mode: 'backfill',
    window: () => options.range,
    async body(run) {
      const { record, resumed } = await deps.db.transaction((tx) =>
        openBackfill(tx, deps.job.name, options.range, parseFixedDuration(options.chunk) ?? 0n, options.resend, chunks),
      );
      const todo = record.chunks.filter((c) => !c.done);
      run.details.backfillId = record.id;
      run.details.resumed = resumed;
      run.details.chunks = record.chunks.length;
      run.details.chunksDoneBefore = record.chunks.length - todo.length;
      let done = 0;
      run.addFailures((await sendOpenConversions(run.open)).failures);
      for (const [i, chunk] of todo.entries()) {
        if (deps.signal.aborted) break;
        options.onChunk?.(record.chunks.length - todo.length + i, record.chunks.length, chunk);
        const before: RunCounts = addCounts(zeroCounts(), run.counts);
        const result = await sendWindow(run.send!, {
          window: chunk,
          advanceWatermark: false,
          ...(options.resend ? { resendSince: record.createdAt } : {}),
          resolveRejects: 'claimed',
        });
        run.addFailures(result.failures);
        if (!result.complete) break;
        const chunkCounts = Object.fromEntries(Object.entries(run.counts).map(([k, v]) => [k, v - before[k as keyof RunCounts]]));
        await deps.db.transaction((tx) => finishChunk(tx, record.id, chunk.start, run.runId, chunkCounts));
        done++;
      }
      run.details.chunksDone = record.chunks.length - todo.length + done;
      if (done === todo.length) {
        await deps.db.transaction((tx) => finishBackfill(tx, record.id));
        run.details.complete = true;
      } else {
        run.details.complete = false;
      }
    },
  });
}
