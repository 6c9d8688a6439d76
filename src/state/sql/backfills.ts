import { parseInstant, type Instant } from '../../time/instant.ts';
import type { Window } from '../../time/window.ts';
import type { Queryable } from '../db.ts';

export interface BackfillRecord {
  id: number;
  job: string;
  range: Window;
  resend: boolean;
  createdAt: string;
  chunks: Array<Window & { done: boolean }>;
}

/**
 * Finds the unfinished backfill of this job and range (so the same command again resumes it), or
 * records a new one with its chunks. One open backfill per (job, range, resend): a unique index.
 */
export async function openBackfill(
  tx: Queryable,
  job: string,
  range: Window,
  chunkMicros: bigint,
  resend: boolean,
  chunks: Window[],
): Promise<{ record: BackfillRecord; resumed: boolean }> {
  const existing = await tx.query<{ id: number }>(
    `select id::int as id from convey.backfills
      where job = $1 and range_start = $2 and range_end = $3 and resend = $4 and status <> 'done'`,
    [job, range.start, range.end, resend],
  );
  if (existing.rows[0]) return { record: (await loadBackfill(tx, existing.rows[0].id))!, resumed: true };
  const { rows } = await tx.query<{ id: number }>(
    `insert into convey.backfills (job, range_start, range_end, chunk_micros, resend, status)
     values ($1, $2, $3, $4, $5, 'running') returning id::int as id`,
    [job, range.start, range.end, chunkMicros.toString(), resend],
  );
  const id = rows[0]!.id;
  await tx.query(
    `insert into convey.backfill_chunks (backfill_id, chunk_start, chunk_end)
     select $1, s, e from unnest($2::timestamptz[], $3::timestamptz[]) as t(s, e)`,
    [id, chunks.map((c) => c.start), chunks.map((c) => c.end)],
  );
  return { record: (await loadBackfill(tx, id))!, resumed: false };
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

export async function finishChunk(tx: Queryable, backfillId: number, chunkStart: Instant, runId: number, counts: Record<string, number>): Promise<void> {
  await tx.query(
    `update convey.backfill_chunks set done_at = now(), run_id = $3, counts = $4 where backfill_id = $1 and chunk_start = $2`,
    [backfillId, chunkStart, runId, JSON.stringify(counts)],
  );
}

export async function finishBackfill(tx: Queryable, backfillId: number): Promise<void> {
  await tx.query(`update convey.backfills set status = 'done', finished_at = now() where id = $1`, [backfillId]);
}
