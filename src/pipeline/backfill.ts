import type { Window } from '../time/window.ts';
import type { Db, LeaseConnection } from '../state/db.ts';
import { finishBackfillIfDone, finishChunk, openBackfill, recordTake, takeNextChunk } from '../state/sql/backfills.ts';
import { markCrashedRuns } from '../state/sql/runs.ts';
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
  /**
   * The runners a scheduler starts together for this backfill (e.g. the CI run's id): one of
   * them starting after the others finished finds the backfill done instead of beginning again.
   */
  group?: string;
  onChunk?: (done: number, total: number, chunk: Window) => void;
}

/**
 * `convey backfill`: sends a bounded range again through the current mapping, chunk by chunk,
 * without touching the job's watermark. Each finished chunk is recorded, so the same command
 * after an interruption resumes with the chunks left; the ledger skips what was sent.
 *
 * The same command started on several machines shares the work: each runner takes the next chunk
 * no one holds (a row lock, released by the database if the runner dies) until none is left, so
 * N runners finish about N times sooner until the source or the destination is the limit.
 */
export function backfillJob(deps: RunJobDeps, options: BackfillOptions): Promise<RunSummary> {
  const chunks = chunkRange(options.range, options.chunk, options.zone);
  const { db, job } = deps;
  return executeRun(deps, {
    mode: 'backfill',
    window: () => options.range,
    async body(run) {
      const { record, resumed, finished } = await db.transaction((tx) => openBackfill(tx, job.name, options.range, parseFixedDuration(options.chunk) ?? 0n, options.resend, chunks, options.group));
      run.details.backfillId = record.id;
      run.details.resumed = resumed;
      run.details.chunks = record.chunks.length;
      run.details.chunksDoneBefore = record.chunks.filter((c) => c.done).length;
      if (finished) {
        // Nothing is read or sent: earlier failures of the job are the nightly run's to send.
        deps.logger.info(`backfill #${record.id} was finished by the other runners of group ${options.group}: nothing to do`);
        Object.assign(run.details, { group: options.group, finishedByGroup: true, chunksDoneHere: 0, chunksDone: record.chunks.length, complete: true });
        return;
      }
      if (options.group) run.details.group = options.group;
      const send = { ...(options.resend ? { resendSince: record.createdAt } : {}) };
      let mine = 0;
      run.addFailures((await sendOpenConversions(run.open)).failures);
      const lease = await db.leaseConnection();
      try {
        for (;;) {
          if (run.open.signal.aborted) break;
          const taken = await takeChunk(db, lease, record.id, run.runId);
          if (!taken) break;
          options.onChunk?.(run.details.chunksDoneBefore as number + mine, record.chunks.length, taken.chunk);
          const before: RunCounts = addCounts(zeroCounts(), run.counts);
          const result = await sendWindow(run.send!, { window: taken.chunk, advanceWatermark: false, ...send, resolveRejects: 'claimed' });
          run.addFailures(result.failures);
          if (!result.complete) {
            await taken.abandon();
            break;
          }
          const chunkCounts = Object.fromEntries(Object.entries(run.counts).map(([k, v]) => [k, v - before[k as keyof RunCounts]]));
          await taken.finish(chunkCounts);
          mine++;
          // A runner that died meanwhile left conversions in doubt: whoever goes on sends them.
          await markCrashedRuns(db, job.name);
          run.addFailures((await sendOpenConversions(run.open)).failures);
        }
      } finally {
        await lease?.release();
      }
      const { done } = await finishBackfillIfDone(db, record.id);
      run.details.chunksDoneHere = mine;
      run.details.chunksDone = done;
      // False when this runner stopped, or when other runners still hold the last chunks.
      run.details.complete = done === record.chunks.length;
    },
  });
}

interface TakenChunk {
  chunk: Window;
  finish(counts: Record<string, number>): Promise<void>;
  /** Leaves the chunk for the next runner (or the next start). */
  abandon(): Promise<void>;
}

/**
 * Takes the next free chunk. With a lease connection (a store several processes share) the chunk
 * stays locked in a transaction on it until `finish` commits or `abandon` rolls back; without one
 * (the embedded store, one process) it is only read.
 */
async function takeChunk(db: Db, lease: LeaseConnection | undefined, backfillId: number, runId: number): Promise<TakenChunk | undefined> {
  if (!lease) {
    const chunk = await takeNextChunk(db, backfillId);
    if (!chunk) return undefined;
    return {
      chunk,
      finish: (counts) => db.transaction((tx) => finishChunk(tx, backfillId, chunk.start, runId, counts)),
      abandon: async () => undefined,
    };
  }
  await lease.query('begin');
  const chunk = await takeNextChunk(lease, backfillId);
  if (!chunk) {
    await lease.query('rollback');
    return undefined;
  }
  await recordTake(db, backfillId, chunk.start, runId);
  return {
    chunk,
    async finish(counts) {
      await finishChunk(lease, backfillId, chunk.start, runId, counts);
      await lease.query('commit');
    },
    abandon: () => lease.query('rollback').then(() => undefined),
  };
}
