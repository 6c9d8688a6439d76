import type { JobConfig } from '../config/project.ts';
import type { Destination, Encoded } from '../destinations/destination.ts';
import type { Db } from '../state/db.ts';
import { abandonEmptyBatches, createBatch, finishBatch, keyOf, openConversions, reclaim, release, type Settlement, type StoredConversion } from '../state/sql/ledger.ts';
import { recordRejects, type RejectInput } from '../state/sql/rejects.ts';
import type { RunCounts } from './counts.ts';
import { deliver } from './deliver.ts';
import { Failures } from './failures.ts';
import type { Transport } from './transport.ts';

export interface SendOpenDeps {
  db: Db;
  destination: Destination;
  transport: Transport;
  job: JobConfig;
  runId: number;
  signal: AbortSignal;
  counts: RunCounts;
  onProgress?: () => void;
}

/** Batches of open conversions sent side by side: enough to keep the HTTP concurrency busy. */
const PARALLEL_BATCHES = 4;

/**
 * The retry step, run before any new row is read: sends again, from the payload the ledger kept,
 * the job's conversions that failed or were deferred, and those an interrupted run left pending
 * (in doubt: they may or may not have arrived; the Event API drops the copy by its uuid).
 * No query goes to the source. Returns why the conversions that failed again failed.
 */
export async function sendOpenConversions(deps: SendOpenDeps): Promise<{ failures: Failures }> {
  const { db, destination, job, runId } = deps;
  const failures = new Failures();
  for (;;) {
    if (deps.signal.aborted) return { failures };
    const open = await openConversions(db, job.name, destination.key, runId, job.batchSize * PARALLEL_BATCHES);
    if (open.length === 0) break;
    const groups: StoredConversion[][] = [];
    for (const origin of ['in-doubt', 'retry'] as const) {
      const ofOrigin = open.filter((c) => (c.status === 'pending') === (origin === 'in-doubt'));
      for (let i = 0; i < ofOrigin.length; i += job.batchSize) groups.push(ofOrigin.slice(i, i + job.batchSize));
    }
    await Promise.all(groups.map((group) => sendGroup(deps, group, failures)));
  }
  await db.transaction((tx) => abandonEmptyBatches(tx, job.name, runId));
  return { failures };
}

async function sendGroup(deps: SendOpenDeps, group: StoredConversion[], failures: Failures): Promise<void> {
  const { db, destination, job, runId, counts } = deps;
  const origin = group[0]!.status === 'pending' ? 'in-doubt' : 'retry';
  let batchId = 0;
  let moved = new Set<string>();
  await db.transaction(async (tx) => {
    batchId = await createBatch(tx, { runId, job: job.name, destination: destination.key, origin, size: group.length });
    moved = await reclaim(tx, destination.key, batchId, group.map((c) => ({ event: c.event, conversionId: c.conversionId, fromBatchId: c.batchId })));
  });
  const items: Encoded[] = group.filter((c) => moved.has(keyOf(c))).map((c) => ({ event: c.event, conversionId: c.conversionId, payload: c.payload }));
  const stored = new Map(group.map((c) => [keyOf(c), c]));
  const outcomes = await deliver(destination, deps.transport, items);

  const exceptions: Settlement[] = [];
  const refused: Encoded[] = [];
  const rejects: RejectInput[] = [];
  for (const item of items) {
    const outcome = outcomes.get(item) ?? { kind: 'deferred' as const };
    if (origin === 'in-doubt') counts.resent++;
    else counts.retried++;
    const previous = stored.get(keyOf(item))!;
    if (outcome.kind === 'sent') counts.sent++;
    else if (outcome.kind === 'failed') {
      counts.failed++;
      failures.add(outcome.failure);
      exceptions.push({ ...key(item), outcome: 'failed', error: outcome.error, attempts: outcome.attempts });
    } else if (outcome.kind === 'deferred') {
      counts.deferred++;
      exceptions.push({ ...key(item), outcome: previous.status === 'pending' ? 'deferred' : previous.status, error: previous.lastError ?? 'not sent: the run was stopped', attempts: 0 });
    } else {
      counts.rejected++;
      refused.push(item);
      rejects.push({ conversionId: item.conversionId, cursor: previous.cursor, reasonCode: 'refused', reason: outcome.reason, row: { payload: item.payload } });
    }
  }
  await db.transaction(async (tx) => {
    await finishBatch(tx, batchId, destination.key, exceptions);
    await release(tx, destination.key, batchId, refused);
    await recordRejects(tx, job.name, runId, rejects);
  });
  deps.onProgress?.();
}

const key = (item: Encoded): { event: string; conversionId: string } => ({ event: item.event, conversionId: item.conversionId });
