import type { Instant } from '../../time/instant.ts';
import type { Queryable } from '../db.ts';

export interface RejectInput {
  conversionId?: string | undefined;
  cursor?: Instant | undefined;
  reasonCode: string;
  reason: string;
  row: unknown;
}

export interface RejectRecord {
  id: number;
  runId: number;
  conversionId: string | null;
  cursor: string | null;
  reasonCode: string;
  reason: string;
  row: Record<string, unknown>;
  timesSeen: number;
  createdAt: string;
  lastSeenAt: string;
}

/**
 * A row rejected again (a later run re-reads it) updates the open reject instead of adding one.
 * Rows that share a conversion_id and a reason within one call (a key repeated in the window,
 * malformed alike) become one reject seen that many times: PostgreSQL refuses an upsert that
 * touches the same row twice, and the run would fail on every retry. Rows without a
 * conversion_id are matched by their content: a row with no cursor is read by every run, and
 * would otherwise add a copy of its reject each night.
 */
export async function recordRejects(tx: Queryable, job: string, runId: number, rejects: readonly RejectInput[]): Promise<void> {
  if (rejects.length === 0) return;
  const keyed = new Map<string, Merged>();
  const unkeyed = new Map<string, Merged>();
  for (const reject of rejects) {
    const [groups, key] =
      reject.conversionId === undefined
        ? [unkeyed, `${reject.reasonCode}\u0000${JSON.stringify(reject.row)}`]
        : [keyed, `${reject.reasonCode}\u0000${reject.conversionId}`];
    const entry = groups.get(key);
    if (entry) entry.seen++;
    else groups.set(key, { reject, seen: 1 });
  }
  if (keyed.size) {
    const list = [...keyed.values()];
    await tx.query(
      `insert into convey.rejects (job, run_id, conversion_id, cursor_value, reason_code, reason, row, times_seen)
       select $1, $2, t.conversion_id, t.cursor_value, t.reason_code, t.reason, t.row, t.seen
         from unnest($3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::jsonb[], $8::int[])
              as t(conversion_id, cursor_value, reason_code, reason, row, seen)
       on conflict (job, conversion_id, reason_code) where resolved_at is null and conversion_id is not null
       do update set run_id = excluded.run_id, reason = excluded.reason, row = excluded.row, cursor_value = excluded.cursor_value,
                     times_seen = convey.rejects.times_seen + excluded.times_seen, last_seen_at = now()`,
      [job, runId, list.map(({ reject }) => reject.conversionId), ...columns(list)],
    );
  }
  if (unkeyed.size) {
    const list = [...unkeyed.values()];
    await tx.query(
      `with input as (
         select * from unnest($3::timestamptz[], $4::text[], $5::text[], $6::jsonb[], $7::int[])
                    as t(cursor_value, reason_code, reason, row, seen)
       ), seen_again as (
         update convey.rejects r
            set run_id = $2, reason = i.reason, times_seen = r.times_seen + i.seen, last_seen_at = now()
           from input i
          where r.job = $1 and r.resolved_at is null and r.conversion_id is null
            and r.reason_code = i.reason_code and r.row = i.row
         returning r.reason_code, r.row
       )
       insert into convey.rejects (job, run_id, conversion_id, cursor_value, reason_code, reason, row, times_seen)
       select $1, $2, null, i.cursor_value, i.reason_code, i.reason, i.row, i.seen
         from input i
        where not exists (select 1 from seen_again s where s.reason_code = i.reason_code and s.row = i.row)`,
      [job, runId, ...columns(list)],
    );
  }
}

interface Merged {
  reject: RejectInput;
  seen: number;
}

function columns(list: readonly Merged[]): unknown[] {
  return [
    list.map(({ reject }) => reject.cursor ?? null),
    list.map(({ reject }) => reject.reasonCode),
    list.map(({ reject }) => reject.reason),
    list.map(({ reject }) => JSON.stringify(reject.row)),
    list.map(({ seen }) => seen),
  ];
}

export async function listOpenRejects(q: Queryable, job: string, options: { reasonCode?: string; limit: number }): Promise<RejectRecord[]> {
  const { rows } = await q.query<RejectRecord>(
    `select id::int as id, run_id::int as "runId", conversion_id as "conversionId", cursor_value as cursor,
            reason_code as "reasonCode", reason, row, times_seen as "timesSeen", created_at as "createdAt",
            last_seen_at as "lastSeenAt"
       from convey.rejects
      where job = $1 and resolved_at is null and ($2::text is null or reason_code = $2)
      order by id limit $3`,
    [job, options.reasonCode ?? null, options.limit],
  );
  return rows;
}

export async function countOpenRejects(q: Queryable, job: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>('select count(*)::int as n from convey.rejects where job = $1 and resolved_at is null', [job]);
  return rows[0]?.n ?? 0;
}

/** Once a conversion is claimed for sending, its earlier rejects are resolved. */
export async function resolveRejects(tx: Queryable, job: string, runId: number, conversionIds: readonly string[]): Promise<number> {
  if (conversionIds.length === 0) return 0;
  const result = await tx.query(
    `update convey.rejects set resolved_at = now(), resolved_by_run = $2
      where job = $1 and resolved_at is null and conversion_id = any($3::text[])`,
    [job, runId, conversionIds],
  );
  return result.rowCount ?? 0;
}

/** Open rejects that can be read again by id: they have a conversion_id and a cursor value. */
export async function replayableRejects(q: Queryable, job: string, reasonCode: string | undefined): Promise<{ ids: string[]; from: string | null; to: string | null; notReplayable: number }> {
  const { rows } = await q.query<{ ids: string[] | null; from: string | null; to: string | null; not_replayable: number }>(
    `select array_agg(distinct conversion_id) filter (where conversion_id is not null and cursor_value is not null) as ids,
            min(cursor_value) filter (where conversion_id is not null) as "from",
            max(cursor_value) filter (where conversion_id is not null) as "to",
            count(*) filter (where conversion_id is null or cursor_value is null)::int as not_replayable
       from convey.rejects
      where job = $1 and resolved_at is null and ($2::text is null or reason_code = $2)`,
    [job, reasonCode ?? null],
  );
  const r = rows[0]!;
  return { ids: r.ids ?? [], from: r.from, to: r.to, notReplayable: r.not_replayable };
}

/** How a replay left the rejects it looked at. */
export async function replayOutcome(q: Queryable, job: string, runId: number): Promise<{ resolved: number; rejectedAgain: number }> {
  const { rows } = await q.query<{ resolved: number; rejected_again: number }>(
    `select count(*) filter (where resolved_by_run = $2)::int as resolved,
            count(*) filter (where resolved_at is null and run_id = $2)::int as rejected_again
       from convey.rejects where job = $1`,
    [job, runId],
  );
  return { resolved: rows[0]!.resolved, rejectedAgain: rows[0]!.rejected_again };
}
