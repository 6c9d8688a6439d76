import { ConveyError } from '../../errors.ts';
import { parseInstant, type Instant } from '../../time/instant.ts';
import type { Queryable } from '../db.ts';

export async function readWatermark(q: Queryable, job: string): Promise<Instant | undefined> {
  const { rows } = await q.query<{ value: string }>('select value from convey.watermarks where job = $1', [job]);
  if (!rows[0]) return undefined;
  const value = parseInstant(rows[0].value);
  // Never read as "no watermark": the run would quietly start again from the job's start.
  if (!value) {
    throw new ConveyError('STATE_ERROR', `the watermark of job "${job}" reads ${JSON.stringify(rows[0].value)}, which is not a timestamp`, {
      hint: 'convey sets DateStyle ISO and TimeZone UTC on each state connection; a pooler in transaction mode (PgBouncer) can lose them: connect directly or in session mode.',
    });
  }
  return value;
}

/**
 * Moves the watermark forward, never back: called inside the transaction that records the
 * ledger rows it now covers, so the two can never disagree after a crash.
 */
export async function advanceWatermark(tx: Queryable, job: string, value: Instant, runId: number): Promise<void> {
  await tx.query(advanceWatermarkSql('$1', '$2', '$3'), [job, value, runId]);
}

/** The statement of advanceWatermark, with the placeholders of the job, the value and the run (for a statement that does more). */
export function advanceWatermarkSql(job: string, value: string, runId: string): string {
  return `insert into convey.watermarks (job, value, run_id) values (${job}, ${value}, ${runId})
     on conflict (job) do update set value = excluded.value, run_id = excluded.run_id, updated_at = now()
      where convey.watermarks.value < excluded.value`;
}

/** An operator's explicit change (`convey state set`): may move it back. */
export async function setWatermark(tx: Queryable, job: string, value: Instant, runId: number): Promise<void> {
  await tx.query(
    `insert into convey.watermarks (job, value, run_id) values ($1, $2, $3)
     on conflict (job) do update set value = excluded.value, run_id = excluded.run_id, updated_at = now()`,
    [job, value, runId],
  );
}

export async function deleteWatermark(tx: Queryable, job: string): Promise<void> {
  await tx.query('delete from convey.watermarks where job = $1', [job]);
}
