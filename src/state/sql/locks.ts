import type { Queryable } from '../db.ts';

/**
 * Session-level advisory locks, held on the store's lock connection for as long as a run lasts.
 * PostgreSQL releases them when that connection ends, so a crashed process leaves nothing to
 * clear by hand. Two key spaces: one lock per job (one run of a job at a time, on any machine),
 * and one per run (so any worker can tell whether a run that left pending work is still alive).
 */
const JOB_KEYSPACE = 0x636f6e76; // 'conv'
const RUN_KEYSPACE = 0x636f6e77;

/** Advisory keys are int4; run ids wrap after 2^31, far beyond any install's run count. */
const runKey = (runId: number): number => runId % 0x7fffffff;

/**
 * `shared`: backfill runners of one job hold the job's lock together (they divide the chunks
 * between them); every other run takes it alone, so the nightly run and any backfill runner still
 * exclude each other.
 */
export async function tryLockJob(conn: Queryable, job: string, shared = false): Promise<boolean> {
  const fn = shared ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
  const { rows } = await conn.query<{ locked: boolean }>(`select ${fn}($1, hashtext($2)) as locked`, [JOB_KEYSPACE, job]);
  return rows[0]?.locked === true;
}

export async function unlockJob(conn: Queryable, job: string, shared = false): Promise<void> {
  await conn.query(`select ${shared ? 'pg_advisory_unlock_shared' : 'pg_advisory_unlock'}($1, hashtext($2))`, [JOB_KEYSPACE, job]);
}

export async function lockRunAlive(conn: Queryable, runId: number): Promise<void> {
  await conn.query('select pg_advisory_lock($1, $2)', [RUN_KEYSPACE, runKey(runId)]);
}

export async function unlockRunAlive(conn: Queryable, runId: number): Promise<void> {
  await conn.query('select pg_advisory_unlock($1, $2)', [RUN_KEYSPACE, runKey(runId)]);
}

/**
 * SQL for the run keys whose liveness lock some session holds now, to compare with
 * `run_id % 2147483647` (see `runKey`) inside a query.
 */
export const LIVE_RUN_KEYS = `select objid::bigint from pg_locks
  where locktype = 'advisory' and granted and objsubid = 2
    and database = (select oid from pg_database where datname = current_database())
    and classid = ${RUN_KEYSPACE}::bigint::oid`;

/** Whether a process somewhere still holds the run's lock. */
export async function aliveRuns(q: Queryable, runIds: number[]): Promise<Set<number>> {
  if (runIds.length === 0) return new Set();
  const { rows } = await q.query<{ objid: string }>(
    // Advisory locks belong to a database; pg_locks shows every database's.
    `select objid::text as objid from pg_locks
      where locktype = 'advisory' and granted and objsubid = 2
        and database = (select oid from pg_database where datname = current_database())
        and classid = $1::bigint::oid and objid = any($2::bigint[]::oid[])`,
    [RUN_KEYSPACE, runIds.map(runKey)],
  );
  const held = new Set(rows.map((r) => Number(r.objid)));
  return new Set(runIds.filter((id) => held.has(runKey(id))));
}
