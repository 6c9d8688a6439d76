import type { RunWarning } from '../../verdict/warning.ts';
import type { Queryable } from '../db.ts';
import type { RunMode, RunStatus } from './runs.ts';

/** A finished run as the verdict compares it: times in epoch milliseconds. */
export interface HistoryRun {
  id: number;
  windowStartMs: number;
  windowEndMs: number;
  read: number;
  rejected: number;
  startedAtMs: number;
  finishedAtMs: number;
  watermarkBeforeMs: number | null;
  watermarkAfterMs: number | null;
  /** The checks that warned about this run. */
  checks: string[];
  /** The middle of its window in the job's zone: minutes into the week (Monday 00:00 = 0). */
  midWeekMinute: number;
}

const ms = (column: string): string => `(extract(epoch from ${column}) * 1000)::float8`;

/**
 * The job's successful runs of one mode that started within `historyMs` before run `runId` did
 * (by the state store's clock, which stamped both): what that run is compared with. Newest first,
 * at most `limit` (an hourly job has 1,344 runs in 8 weeks; each row is small). The local time of
 * each window's middle is computed here: luxon took 23 µs a run for it (0.9 s for 40,000),
 * PostgreSQL a small part of the query.
 */
export async function successfulRunsBefore(q: Queryable, job: string, mode: RunMode, options: { runId: number; historyMs: number; limit: number; timezone: string }): Promise<HistoryRun[]> {
  const { rows } = await q.query<HistoryRun>(
    `select id::int as id, ${ms('window_start')} as "windowStartMs", ${ms('window_end')} as "windowEndMs",
            coalesce((counts->>'read')::int, 0) as read, coalesce((counts->>'rejected')::int, 0) as rejected,
            ${ms('started_at')} as "startedAtMs", ${ms('finished_at')} as "finishedAtMs",
            ${ms('watermark_before')} as "watermarkBeforeMs", ${ms('watermark_after')} as "watermarkAfterMs",
            array(select w->>'check' from jsonb_array_elements(coalesce(warnings, '[]')) w) as checks,
            ((extract(isodow from mid) - 1) * 1440 + extract(hour from mid) * 60 + extract(minute from mid))::int as "midWeekMinute"
       from convey.runs,
            lateral (select (window_start + (window_end - window_start) / 2) at time zone $6 as mid) local
      where job = $1 and mode = $2 and status = 'succeeded' and id < $3
        and window_start is not null and window_end is not null and finished_at is not null
        and started_at > (select started_at from convey.runs where id = $3) - $4::float8 * interval '1 millisecond'
      order by id desc
      limit $5`,
    [job, mode, options.runId, options.historyMs, options.limit, options.timezone],
  );
  return rows;
}

/**
 * Reject reasons this run recorded that no earlier reject of the job had (open or resolved):
 * a reject re-seen by this run keeps its first created_at, so it counts as seen before.
 */
export async function newRejectReasons(q: Queryable, job: string, runId: number): Promise<Array<{ reasonCode: string; rows: number; example: string }>> {
  const { rows } = await q.query<{ reasonCode: string; rows: number; example: string }>(
    `select r.reason_code as "reasonCode", sum(r.times_seen)::int as rows, min(r.reason) as example
       from convey.rejects r
      where r.job = $1 and r.run_id = $2
        and not exists (select 1 from convey.rejects p
                         where p.job = $1 and p.reason_code = r.reason_code
                           and p.created_at < (select started_at from convey.runs where id = $2))
      group by r.reason_code
      order by r.reason_code`,
    [job, runId],
  );
  return rows;
}

export async function recordWarnings(q: Queryable, runId: number, warnings: readonly RunWarning[]): Promise<void> {
  await q.query('update convey.runs set warnings = $2 where id = $1', [runId, JSON.stringify(warnings)]);
}

/** The last finished run of each mode, with the last success of that mode: what the metrics show. */
export interface LastRun {
  id: number;
  mode: RunMode;
  status: RunStatus;
  startedAtMs: number;
  finishedAtMs: number;
  counts: Record<string, number>;
  warnings: number;
  lastSuccessMs: number | null;
}

export async function lastRunsByMode(q: Queryable, job: string): Promise<LastRun[]> {
  const { rows } = await q.query<LastRun>(
    `select distinct on (r.mode) r.id::int as id, r.mode, r.status, ${ms('r.started_at')} as "startedAtMs",
            ${ms('r.finished_at')} as "finishedAtMs", r.counts,
            coalesce(jsonb_array_length(r.warnings), 0) as warnings,
            (select ${ms('max(s.finished_at)')} from convey.runs s
              where s.job = r.job and s.mode = r.mode and s.status = 'succeeded') as "lastSuccessMs"
       from convey.runs r
      where r.job = $1 and r.status <> 'running' and r.mode <> 'state'
      order by r.mode, r.id desc`,
    [job],
  );
  return rows;
}
