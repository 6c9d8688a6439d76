import type { JobConfig } from '../config/project.ts';
import type { Destination } from '../destinations/destination.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { DescribedMapping } from '../source/mapping.ts';
import type { Source } from '../source/open.ts';
import type { SpoolStats } from '../source/spool.ts';
import type { Clock } from '../time/clock.ts';
import type { Window } from '../time/window.ts';
import type { Db } from '../state/db.ts';
import { claimAllNew, claimForResend, claimNew, createBatch, finishBatch, finishSentBatches, keyOf, lookup, release, type Settlement } from '../state/sql/ledger.ts';
import { recordRejects, resolveRejects, type RejectInput } from '../state/sql/rejects.ts';
import { advanceWatermark } from '../state/sql/watermarks.ts';
import type { Instant } from '../time/instant.ts';
import { checkedBatches, duplicateReject, type CheckedBatch, type Item } from './checked-batches.ts';
import type { RunCounts } from './counts.ts';
import { deliver } from './deliver.ts';
import { Failures } from './failures.ts';
import { Frontier } from './frontier.ts';
import { InFlightLimit } from './in-flight-limit.ts';
import type { Transport } from './transport.ts';

export interface SendDeps {
  db: Db;
  source: Source;
  /** The job's SQL as the source described it (run-job.ts checks it before anything is sent). */
  mapping: DescribedMapping;
  clock: Clock;
  destination: Destination;
  transport: Transport;
  job: JobConfig;
  runId: number;
  logger: Logger;
  /** Stop reading when it aborts; batches in flight finish. */
  signal: AbortSignal;
  counts: RunCounts;
  onProgress?: () => void;
  /** Filled in by the read: rows read so far, whether the query ended, what was spooled. */
  readStats: SpoolStats;
}

export interface SendOptions {
  window: Window;
  /** Incremental runs move the job's watermark; backfills and replays never do. */
  advanceWatermark: boolean;
  /** Backfill --resend: claim conversions again unless sent by a resend since this time. */
  resendSince?: string;
  /** Replay: only these conversion ids. */
  conversionIds?: readonly string[];
  /**
   * Which open rejects to mark resolved: those of conversions claimed now ('claimed'; a run skips
   * this when the job has no open rejects), or also of those found already sent ('passing': a
   * replay, where a reject whose row now passes has nothing left to do).
   */
  resolveRejects: 'claimed' | 'passing' | false;
}

export interface SendResult {
  /** The whole window was read and every batch recorded (not stopped). */
  complete: boolean;
  /** Where the watermark stands after the pass, if it moved. */
  watermark: Instant | undefined;
  /** Why the conversions counted failed, by cause. */
  failures: Failures;
}

/** What a batch leaves to record once its requests have answered. */
interface Finished {
  seq: number;
  highCursor: Instant | undefined;
  batchId: number;
  exceptions: Settlement[];
  /** Refused by the endpoint: their claims are released (unless an earlier copy arrived) and they become rejects. */
  refused: Item[];
  refusedRejects: RejectInput[];
  delivered: ReadonlySet<string>;
  recorded: () => void;
  failed: (error: unknown) => void;
}

/**
 * One window, end to end: read pages, check rows, claim each batch in the ledger (pending), send
 * it, record its outcome, move the watermark. Several batches are in flight at once; their
 * outcomes are recorded one transaction at a time so the watermark written is exactly the point
 * below which everything is recorded. Batches that finish while a record is being written are
 * recorded together in the next one: on a machine where a commit waits ~5 ms for the disk, one
 * commit per batch made the record step the slowest in the pipeline.
 */
export async function sendWindow(deps: SendDeps, options: SendOptions): Promise<SendResult> {
  const { db, destination, job, runId, counts } = deps;
  const frontier = new Frontier();
  const failures = new Failures();
  let watermark: Instant | undefined;
  let failure: unknown;
  const inFlight = new Set<Promise<void>>();
  // At most enough batches in flight to keep `concurrency` requests busy (the Event API carries a
  // batch in about one request, classic in `batchSize` requests), and no more than the pipeline's
  // own pace needs: see InFlightLimit.
  const limit = new InFlightLimit(
    destination.splittable ? job.rateLimit.concurrency + 1 : Math.max(2, Math.ceil(job.rateLimit.concurrency / job.batchSize) + 1),
  );
  const origin = options.resendSince ? 'resend' : 'source';
  // A batch claims in one plain statement while keys keep being new (claimAllNew); once one was
  // not, the next batches claim in a transaction that says which keys were taken, until one of
  // them takes all. The first batch of a window goes that way too: a run's lookback re-reads rows
  // sent the night before, and a failed plain insert is an ERROR line in the server's log.
  let plainClaims = false;

  // Recording: finished batches queue here; one transaction at a time takes all that are waiting.
  let waiting: Finished[] = [];
  let recording = false;
  const recordWaiting = async (): Promise<void> => {
    recording = true;
    while (waiting.length) {
      const group = waiting;
      waiting = [];
      try {
        const moveTo = options.advanceWatermark ? frontier.peek(group.map((f) => [f.seq, f.highCursor])) : undefined;
        await recordFinished(group, moveTo);
        if (moveTo) watermark = moveTo;
        for (const f of group) frontier.complete(f.seq, f.highCursor);
        for (const f of group) f.recorded();
      } catch (error) {
        for (const f of group) f.failed(error);
      }
    }
    recording = false;
  };
  const record = (finished: Omit<Finished, 'recorded' | 'failed'>): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ ...finished, recorded: resolve, failed: reject });
      if (!recording) void recordWaiting();
    });

  /** The outcomes of `group` and the watermark in one transaction (one statement when all was sent). */
  const recordFinished = async (group: Finished[], moveTo: Instant | undefined): Promise<void> => {
    const clean = group.every((f) => f.exceptions.length === 0 && f.refused.length === 0);
    const batchIds = group.filter((f) => f.batchId).map((f) => f.batchId);
    if (clean) {
      if (batchIds.length || moveTo) await finishSentBatches(db, batchIds, moveTo && { job: job.name, value: moveTo, runId });
      return;
    }
    await db.transaction(async (tx) => {
      for (const f of group) {
        if (!f.batchId) continue;
        await finishBatch(tx, f.batchId, destination.key, f.exceptions);
        await release(tx, destination.key, f.batchId, f.refused.filter((item) => !f.delivered.has(keyOf(item))));
        await recordRejects(tx, job.name, runId, f.refusedRejects);
      }
      if (moveTo) await advanceWatermark(tx, job.name, moveTo, runId);
    });
  };

  /** Claims what it can of `batch` (pending, before anything leaves) and records its rejects. */
  const claim = async (batch: CheckedBatch): Promise<{ batchId: number; claimed: Item[]; rejects: RejectInput[]; delivered: Set<string> }> => {
    const resolving = options.resolveRejects !== false;
    if (plainClaims && batch.items.length && !batch.rejects.length && !options.resendSince && options.resolveRejects !== 'passing') {
      const batchId = await claimAllNew(db, { runId, job: job.name, destination: destination.key, origin }, batch.items, { resolveRejects: resolving });
      if (batchId !== undefined) return { batchId, claimed: batch.items, rejects: [], delivered: new Set() };
      plainClaims = false;
    }
    const rejects: RejectInput[] = [...batch.rejects];
    let batchId = 0;
    let claimed: Item[] = [];
    let delivered = new Set<string>();
    await db.transaction(async (tx) => {
      if (batch.items.length) {
        if (options.resendSince) {
          // A resend the endpoint refuses must not erase that an earlier copy arrived: without its
          // ledger row, the next run or backfill reading it would send it again.
          const before = await lookup(tx, destination.key, batch.items);
          delivered = new Set([...before.values()].filter((e) => e.status === 'sent').map((e) => e.key));
        }
        batchId = await createBatch(tx, { runId, job: job.name, destination: destination.key, origin, size: batch.items.length });
        const won = options.resendSince
          ? await claimForResend(tx, destination.key, job.name, batchId, batch.items, options.resendSince)
          : await claimNew(tx, destination.key, job.name, batchId, batch.items);
        plainClaims = won === 'all';
        claimed = won === 'all' ? batch.items : batch.items.filter((item) => won.has(keyOf(item)));
        const lost = won === 'all' ? [] : batch.items.filter((item) => !won.has(keyOf(item)));
        const passing = claimed.map((c) => c.conversionId);
        if (lost.length) {
          const existing = await lookup(tx, destination.key, lost);
          for (const item of lost) {
            const entry = existing.get(keyOf(item));
            if (entry && entry.runId === runId && (entry.origin === 'source' || entry.origin === 'resend')) {
              rejects.push(duplicateReject(item, item.row));
            } else if (entry?.status === 'sent' && entry.runId !== runId) {
              counts.alreadySent++;
              if (options.resolveRejects === 'passing') passing.push(item.conversionId);
            } else {
              // Held by another run, or failed earlier and already retried by this run.
              counts.skipped++;
            }
          }
        }
        if (resolving && passing.length) await resolveRejects(tx, job.name, runId, passing);
      }
      await recordRejects(tx, job.name, runId, rejects);
    });
    return { batchId, claimed, rejects, delivered };
  };

  const processBatch = async (batch: CheckedBatch): Promise<void> => {
    const started = deps.clock.monotonic();
    const seq = frontier.issue();
    counts.read += batch.read;
    const { batchId, claimed, rejects, delivered } = await claim(batch);
    counts.rejected += rejects.length;
    deps.onProgress?.();

    const exceptions: Settlement[] = [];
    const refused: Item[] = [];
    const refusedRejects: RejectInput[] = [];
    if (claimed.length) {
      const outcomes = await deliver(destination, deps.transport, claimed);
      for (const item of claimed) {
        const outcome = outcomes.get(item) ?? { kind: 'deferred' as const };
        if (outcome.kind === 'sent') counts.sent++;
        else if (outcome.kind === 'failed') {
          counts.failed++;
          failures.add(outcome.failure);
          exceptions.push({ event: item.event, conversionId: item.conversionId, outcome: 'failed', error: outcome.error, attempts: outcome.attempts });
        } else if (outcome.kind === 'deferred') {
          counts.deferred++;
          exceptions.push({ event: item.event, conversionId: item.conversionId, outcome: 'deferred', error: 'not sent: the run was stopped', attempts: 0 });
        } else {
          counts.rejected++;
          refused.push(item);
          refusedRejects.push({ conversionId: item.conversionId, cursor: item.cursor, reasonCode: 'refused', reason: outcome.reason, row: item.row });
        }
      }
    }

    // Record: the batch's outcome, and the watermark if everything below this batch is recorded.
    await record({ seq, highCursor: batch.highCursor, batchId, exceptions, refused, refusedRejects, delivered });
    limit.batchTook(deps.clock.monotonic() - started);
    deps.onProgress?.();
  };

  let resumed = deps.clock.monotonic();
  try {
    for await (const batch of checkedBatches(deps.source, deps.mapping, job, destination, options.window, {
      clock: deps.clock,
      signal: deps.signal,
      ...(options.conversionIds ? { conversionIds: options.conversionIds } : {}),
      stats: deps.readStats,
      onResume: (error, after) =>
        deps.logger.warn('the source connection dropped during the read: resuming after the last row read', { error: errorMessage(error), after: after ? `${after.cursor} ${after.id}` : 'the start' }),
    })) {
      limit.batchRead(deps.clock.monotonic() - resumed);
      if (failure) break;
      const task = processBatch(batch).catch((error: unknown) => {
        failure ??= error;
      });
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
      while (inFlight.size >= limit.value) await Promise.race(inFlight);
      if (failure || deps.signal.aborted) break;
      resumed = deps.clock.monotonic();
    }
  } catch (error) {
    failure ??= error;
  }
  await Promise.all(inFlight);
  if (failure) throw failure;

  const complete = !deps.signal.aborted;
  if (complete && options.advanceWatermark) {
    // The whole window is recorded: the next run starts from its end (minus the lookback).
    await db.transaction((tx) => advanceWatermark(tx, job.name, options.window.end, runId));
    watermark = options.window.end;
  }
  return { complete, watermark, failures };
}
