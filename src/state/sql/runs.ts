import type { Instant } from '../../time/instant.ts';
import type { RunWarning } from '../../verdict/warning.ts';
import type { Queryable } from '../db.ts';
import { aliveRuns } from './locks.ts';

export type RunMode = 'run' | 'backfill' | 'retry' | 'replay' | 'state';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted' | 'crashed';

export interface NewRun {
  job: string;
  mode: RunMode;
  sqlHash?: string;
  version: string;
  host: string;
  pid: number;
  actor?: string;
  note?: string;
  windowStart?: Instant;
  windowEnd?: Instant;
  watermarkBefore?: Instant;
  status?: RunStatus;
}

export interface RunRecord {
  id: number;
  job: string;
  mode: RunMode;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  windowStart: string | null;
  windowEnd: string | null;
  watermarkBefore: string | null;
  watermarkAfter: string | null;
  counts: Record<string, number>;
  sqlHash: string | null;
  version: string;
  host: string;
  pid: number;
  actor: string | null;
  note: string | null;
  error: string | null;
  /** Why conversions failed, by cause (the run summary's `failures`); [] when none did. */
  failures: Array<Record<string, unknown>>;
  /** The verdict's warnings (src/verdict/); null when the run got no verdict. */
  warnings: RunWarning[] | null;
}

const COLUMNS = `id::int as id, job, mode, status, started_at as "startedAt", finished_at as "finishedAt",
  window_start as "windowStart", window_end as "windowEnd", watermark_before as "watermarkBefore",
  watermark_after as "watermarkAfter", counts, sql_hash as "sqlHash", convey_version as version, host, pid,
  actor, note, error, failures, warnings`;

export async function insertRun(q: Queryable, run: NewRun): Promise<number> {
  const { rows } = await q.query<{ id: number }>(
    `insert into convey.runs (job, mode, status, sql_hash, convey_version, host, pid, actor, note,
                              window_start, window_end, watermark_before, finished_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, case when $3 = 'running' then null else now() end)
     returning id::int as id`,
    [run.job, run.mode, run.status ?? 'running', run.sqlHash ?? null, run.version, run.host, run.pid,
      run.actor ?? null, run.note ?? null, run.windowStart ?? null, run.windowEnd ?? null, run.watermarkBefore ?? null],
  );
  return rows[0]!.id;
}

export async function updateRunWindow(q: Queryable, runId: number, start: Instant, end: Instant, watermarkBefore: Instant | undefined): Promise<void> {
  await q.query('update convey.runs set window_start = $2, window_end = $3, watermark_before = $4 where id = $1', [runId, start, end, watermarkBefore ?? null]);
}

export async function finishRun(
  q: Queryable,
  runId: number,
  result: {
    status: RunStatus;
    counts: Record<string, number>;
    watermarkAfter?: Instant | undefined;
    error?: string | undefined;
    failures?: readonly object[];
  },
): Promise<void> {
  await q.query(
    `update convey.runs set status = $2, counts = $3, watermark_after = $4, error = $5, failures = $6, finished_at = now() where id = $1`,
    [runId, result.status, JSON.stringify(result.counts), result.watermarkAfter ?? null, result.error ?? null, JSON.stringify(result.failures ?? [])],
  );
}

/** Runs still marked running whose process is gone (their run lock is free) become crashed. */
export async function markCrashedRuns(q: Queryable, job: string): Promise<number[]> {
  const { rows } = await q.query<{ id: number }>(`select id::int as id from convey.runs where job = $1 and status = 'running'`, [job]);
  const ids = rows.map((r) => r.id);
  const alive = await aliveRuns(q, ids);
  const dead = ids.filter((id) => !alive.has(id));
  if (dead.length) {
    await q.query(
      `update convey.runs set status = 'crashed', finished_at = coalesce(finished_at, now()),
              error = coalesce(error, 'the process ended without finishing the run (killed or crashed)')
        where id = any($1::bigint[])`,
      [dead],
    );
  }
  return dead;
}

/** The live run holding a job, if any (for "which run holds the job"). */
export async function liveRun(q: Queryable, job: string): Promise<RunRecord | undefined> {
  const { rows } = await q.query<RunRecord>(
    `select ${COLUMNS} from convey.runs r where job = $1 and status = 'running' order by id desc`,
    [job],
  );
  const alive = await aliveRuns(q, rows.map((r) => r.id));
  return rows.find((r) => alive.has(r.id));
}

export async function lastRuns(q: Queryable, job: string, limit: number): Promise<RunRecord[]> {
  const { rows } = await q.query<RunRecord>(`select ${COLUMNS} from convey.runs r where job = $1 order by id desc limit $2`, [job, limit]);
  return rows;
}

export async function runJobs(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ job: string }>('select distinct job from convey.runs order by job');
  return rows.map((r) => r.job);
}

/** The job's last finished run (a `state` change is not a run). */
export async function lastFinishedRun(q: Queryable, job: string): Promise<RunRecord | undefined> {
  const { rows } = await q.query<RunRecord>(
    `select ${COLUMNS} from convey.runs r where job = $1 and mode <> 'state' and status <> 'running' order by id desc limit 1`,
    [job],
  );
  return rows[0];
}

/** The run that failed (or crashed) last, for "why is this job failing". */
export async function lastFailedRun(q: Queryable, job: string): Promise<RunRecord | undefined> {
  const { rows } = await q.query<RunRecord>(
    `select ${COLUMNS} from convey.runs r where job = $1 and status in ('failed', 'crashed') order by id desc limit 1`,
    [job],
  );
  return rows[0];
}

/**
 * The failed or crashed runs since the job last succeeded (a `state` change is not a run): how
 * many, and when the first of them started. Zero runs when the last one succeeded.
 */
export async function failingStreak(q: Queryable, job: string): Promise<{ runs: number; firstRunId: number | null; since: string | null }> {
  const { rows } = await q.query<{ runs: number; first_run_id: number | null; since: string | null }>(
    `select count(*)::int as runs, min(id)::int as first_run_id, min(started_at) as since
       from convey.runs
      where job = $1 and mode <> 'state' and status in ('failed', 'crashed')
        and id > coalesce((select max(id) from convey.runs where job = $1 and mode <> 'state' and status = 'succeeded'), 0)`,
    [job],
  );
  const r = rows[0]!;
  return { runs: r.runs, firstRunId: r.first_run_id, since: r.since };
}
