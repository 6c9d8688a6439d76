import { parseInstant, type Instant } from '../../time/instant.ts';
import type { Window } from '../../time/window.ts';
import type { Queryable } from '../db.ts';
import { aliveRuns } from './locks.ts';

export interface BackfillRecord {
  id: number;
  job: string;
  range: Window;
  resend: boolean;
  createdAt: string;
  chunks: Array<Window & { done: boolean }>;
}

/**
 * Finds the unfinished backfill of this job and range (so the same command again resumes it, and
 * runners started together on several machines all join the same one), or records a new one with
 * its chunks. One open backfill per (job, range, resend): a unique index. Runners starting at the
 * same moment both try the insert; the loser waits for the winner's transaction (the index), gets
 * nothing back, and finds the winner's backfill, chunks included (inserted in that transaction).
 *
 * With a runner group, a backfill that group already finished counts too (`finished`): a runner
 * the scheduler started late must not begin the range again. One statement looks for both, so a
 * backfill marked done between two looks cannot be missed by both.
 */
export async function openBackfill(
  tx: Queryable,
  job: string,
  range: Window,
  chunkMicros: bigint,
  resend: boolean,
  chunks: Window[],
  group?: string,
): Promise<{ record: BackfillRecord; resumed: boolean; finished: boolean }> {
  const existing = await tx.query<{ id: number; done: boolean }>(
    `select id::int as id, status = 'done' as done from convey.backfills
      where job = $1 and range_start = $2 and range_end = $3 and resend = $4
        and (status <> 'done' or runner_group = $5)
      order by status = 'done', id desc
      limit 1`,
    [job, range.start, range.end, resend, group ?? null],
  );
  const found = existing.rows[0];
  if (found) return { record: (await loadBackfill(tx, found.id))!, resumed: true, finished: found.done };
  const { rows } = await tx.query<{ id: number }>(
    `insert into convey.backfills (job, range_start, range_end, chunk_micros, resend, status, runner_group)
     values ($1, $2, $3, $4, $5, 'running', $6)
     on conflict (job, range_start, range_end, resend) where status <> 'done' do nothing
     returning id::int as id`,
    [job, range.start, range.end, chunkMicros.toString(), resend, group ?? null],
  );
  if (!rows[0]) return openBackfill(tx, job, range, chunkMicros, resend, chunks, group);
  const id = rows[0].id;
  await tx.query(
    `insert into convey.backfill_chunks (backfill_id, chunk_start, chunk_end)
     select $1, s, e from unnest($2::timestamptz[], $3::timestamptz[]) as t(s, e)`,
    [id, chunks.map((c) => c.start), chunks.map((c) => c.end)],
  );
  return { record: (await loadBackfill(tx, id))!, resumed: false, finished: false };
}

/** The job's most recent unfinished backfill (for `backfill --resume` without a range). */
export async function latestOpenBackfill(q: Queryable, job: string): Promise<BackfillRecord | undefined> {
  const { rows } = await q.query<{ id: number }>(
    `select id::int as id from convey.backfills where job = $1 and status <> 'done' order by id desc limit 1`,
    [job],
  );
  return rows[0] ? loadBackfill(q, rows[0].id) : undefined;
}

export async function loadBackfill(q: Queryable, id: number): Promise<BackfillRecord | undefined> {
  const { rows } = await q.query<{ job: string; range_start: string; range_end: string; resend: boolean; created_at: string }>(
    'select job, range_start, range_end, resend, created_at from convey.backfills where id = $1',
    [id],
  );
  const b = rows[0];
  if (!b) return undefined;
  const chunks = await q.query<{ chunk_start: string; chunk_end: string; done: boolean }>(
    `select chunk_start, chunk_end, done_at is not null as done from convey.backfill_chunks where backfill_id = $1 order by chunk_start`,
    [id],
  );
  return {
    id,
    job: b.job,
    range: { start: parseInstant(b.range_start)!, end: parseInstant(b.range_end)! },
    resend: b.resend,
    createdAt: b.created_at,
    chunks: chunks.rows.map((c) => ({ start: parseInstant(c.chunk_start)!, end: parseInstant(c.chunk_end)!, done: c.done })),
  };
}

/**
 * The next chunk nobody holds and nobody has finished, locked for the rest of `tx` (`for update
 * skip locked`: a chunk another runner holds is passed over, not waited for). Run in a transaction
 * held open while the chunk is sent; the database drops the lock with the connection, so a runner
 * that dies leaves its chunk to the others. On a store only one process uses, `tx` is any
 * connection and the lock is moot.
 */
export async function takeNextChunk(tx: Queryable, backfillId: number): Promise<Window | undefined> {
  const { rows } = await tx.query<{ chunk_start: string; chunk_end: string }>(
    `select chunk_start, chunk_end from convey.backfill_chunks
      where backfill_id = $1 and done_at is null
      order by chunk_start
      for update skip locked
      limit 1`,
    [backfillId],
  );
  const row = rows[0];
  return row ? { start: parseInstant(row.chunk_start)!, end: parseInstant(row.chunk_end)! } : undefined;
}

/** Says, committed, which run works on a chunk (the row lock itself is invisible to `status`). */
export async function recordTake(q: Queryable, backfillId: number, chunkStart: Instant, runId: number): Promise<void> {
  await q.query(`insert into convey.backfill_takes (backfill_id, chunk_start, run_id) values ($1, $2, $3) on conflict do nothing`, [backfillId, chunkStart, runId]);
}

export async function finishChunk(tx: Queryable, backfillId: number, chunkStart: Instant, runId: number, counts: Record<string, number>): Promise<void> {
  await tx.query(
    `update convey.backfill_chunks set done_at = now(), run_id = $3, counts = $4 where backfill_id = $1 and chunk_start = $2`,
    [backfillId, chunkStart, runId, JSON.stringify(counts)],
  );
  await tx.query(`delete from convey.backfill_takes where backfill_id = $1 and chunk_start = $2`, [backfillId, chunkStart]);
}

/**
 * Marks the backfill done when no chunk is left. Every runner calls it after its last chunk is
 * committed, so the runner that finishes last always sees every chunk done.
 */
export async function finishBackfillIfDone(q: Queryable, backfillId: number): Promise<{ done: number; total: number }> {
  const { rows } = await q.query<{ done: number; total: number }>(
    `select count(*) filter (where done_at is not null)::int as done, count(*)::int as total from convey.backfill_chunks where backfill_id = $1`,
    [backfillId],
  );
  const { done, total } = rows[0]!;
  if (done === total) await q.query(`update convey.backfills set status = 'done', finished_at = coalesce(finished_at, now()) where id = $1`, [backfillId]);
  return { done, total };
}

export interface BackfillProgress {
  id: number;
  range: Window;
  resend: boolean;
  total: number;
  done: number;
  waiting: number;
  /** Chunks a live run is sending now. */
  inProgress: Array<{ chunkStart: Instant; runId: number; host: string; pid: number }>;
}

/** The job's unfinished backfills, chunk by chunk: for `convey status`. */
export async function openBackfillProgress(q: Queryable, job: string): Promise<BackfillProgress[]> {
  const { rows } = await q.query<{ id: number; range_start: string; range_end: string; resend: boolean; total: number; done: number }>(
    `select b.id::int as id, b.range_start, b.range_end, b.resend,
            count(c.*)::int as total, count(c.done_at)::int as done
       from convey.backfills b join convey.backfill_chunks c on c.backfill_id = b.id
      where b.job = $1 and b.status <> 'done'
      group by b.id order by b.id`,
    [job],
  );
  if (rows.length === 0) return [];
  const takes = await q.query<{ backfill_id: number; chunk_start: string; run_id: number; host: string; pid: number }>(
    `select t.backfill_id::int as backfill_id, t.chunk_start, t.run_id::int as run_id, r.host, r.pid
       from convey.backfill_takes t
       join convey.backfill_chunks c on c.backfill_id = t.backfill_id and c.chunk_start = t.chunk_start and c.done_at is null
       join convey.runs r on r.id = t.run_id
      where t.backfill_id = any($1::bigint[])
      order by t.chunk_start`,
    [rows.map((r) => r.id)],
  );
  const alive = await aliveRuns(q, [...new Set(takes.rows.map((t) => t.run_id))]);
  return rows.map((b) => {
    const inProgress = takes.rows
      .filter((t) => t.backfill_id === b.id && alive.has(t.run_id))
      .map((t) => ({ chunkStart: parseInstant(t.chunk_start)!, runId: t.run_id, host: t.host, pid: t.pid }));
    return {
      id: b.id,
      range: { start: parseInstant(b.range_start)!, end: parseInstant(b.range_end)! },
      resend: b.resend,
      total: b.total,
      done: b.done,
      waiting: b.total - b.done - inProgress.length,
      inProgress,
    };
  });
}
