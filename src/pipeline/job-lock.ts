import { hostname, userInfo } from 'node:os';
import { ConveyError } from '../errors.ts';
import { conveyVersion } from '../package-root.ts';
import type { Db } from '../state/db.ts';
import { lockRunAlive, tryLockJob, unlockJob, unlockRunAlive } from '../state/sql/locks.ts';
import { insertRun, liveRun, markCrashedRuns, type NewRun, type RunMode } from '../state/sql/runs.ts';

export interface HeldJob {
  runId: number;
  /** Runs of this job that had died while marked running (now marked crashed). */
  crashedRuns: number[];
  release(): Promise<void>;
}

/**
 * Takes the job for one run: its advisory lock (one run of a job at a time, across every worker
 * sharing the state store), a run record, and the run's own liveness lock. A second run gets a
 * JOB_LOCKED error naming the run that holds the job, and sends nothing.
 */
export async function holdJob(
  db: Db,
  job: string,
  mode: RunMode,
  extra: Omit<NewRun, 'job' | 'mode' | 'version' | 'host' | 'pid'> = {},
  /** The host recorded for the run (CONVEY_HOSTNAME, else the machine's name). */
  host: string = hostname(),
): Promise<HeldJob> {
  const conn = await db.lockConnection();
  // Backfill runners share the job: started on several machines, they divide its chunks.
  const shared = mode === 'backfill';
  if (!(await tryLockJob(conn, job, shared))) {
    const holder = await liveRun(db, job);
    const who = holder
      ? `run ${holder.id} (${holder.mode}, pid ${holder.pid} on ${holder.host}, started ${holder.startedAt})`
      : 'another run that is just starting';
    throw new ConveyError('JOB_LOCKED', `job "${job}" is held by ${who}; this run sent nothing`, {
      hint: 'Wait for it to finish (convey status shows it). Nothing needs clearing: the lock is released when that process ends, even if it is killed.',
      details: { holder },
    });
  }
  try {
    const runId = await insertRun(db, { job, mode, version: conveyVersion, host, pid: process.pid, actor: actor(host), ...extra });
    await lockRunAlive(conn, runId);
    const crashedRuns = await markCrashedRuns(db, job);
    return {
      runId,
      crashedRuns,
      async release() {
        await unlockRunAlive(conn, runId).catch(() => undefined);
        await unlockJob(conn, job, shared).catch(() => undefined);
      },
    };
  } catch (error) {
    await unlockJob(conn, job, shared).catch(() => undefined);
    throw error;
  }
}

/** Who is acting, for the run history (user@host). */
export function actor(host: string = hostname()): string {
  try {
    return `${userInfo().username}@${host}`;
  } catch {
    return `unknown@${host}`;
  }
}
