import pg from 'pg';
import { ConveyError } from '../errors.ts';

/**
 * The connections that hold a runner's claims on shared work: the lock connection (session
 * advisory locks on jobs and runs) and, during a backfill, the chunk connection (a row lock in an
 * open transaction). PostgreSQL releases both when the connection ends, so a runner killed with -9
 * leaves nothing to clear. What these helpers add is for a runner that is cut off without its
 * connection ending (a network partition, a stalled proxy): it must stop sending before the server
 * frees its claims and another runner takes the work.
 */

/** How often the lock connection is asked `select 1`. */
export const HEARTBEAT_MS = 1000;

/**
 * A runner that has had no answer for this long counts its locks as lost and stops sending. It
 * must be well under the time the server takes to notice a vanished client (SERVER_KEEPALIVE
 * below: about 35 s), so the runner has stopped before anyone else can take its work; and well
 * over what a slow answer takes on a loaded machine (a run here once gave up at 5 s with the load
 * average at 14 on 2 cores).
 */
export const LOCK_TIMEOUT_MS = 10_000;

/**
 * A heartbeat tick this much later than planned means this process did not run (SIGSTOP, a paused
 * VM, a machine swapping): the time is its own, not the database's silence, and is not counted.
 */
const STALL_MS = 1000;

/**
 * Per-session server settings for the connections that carry locks. PostgreSQL's default leaves
 * detecting a client that vanished to the operating system (two hours of silence on Linux): the
 * locks of a partitioned runner would block its jobs all night. With these the server probes a
 * silent client after 15 s and drops it after four unanswered probes 5 s apart (about 35 s), and
 * gives up on data it sent that goes unacknowledged for 35 s. A stopped (SIGSTOP) process keeps its
 * connections: its kernel still answers the probes. Ignored on Unix sockets.
 */
export const SERVER_KEEPALIVE =
  'set tcp_keepalives_idle = 15; set tcp_keepalives_interval = 5; set tcp_keepalives_count = 4; set tcp_user_timeout = 35000';

/**
 * Watches a lock-holding connection: a `select 1` every HEARTBEAT_MS; no answer within
 * LOCK_TIMEOUT_MS (time this process was stopped not counted) calls `lost`. Returns the stop.
 */
export function heartbeat(client: pg.Client, lost: (error: Error) => void): () => void {
  let lastTick = performance.now();
  let pingSentAt: number | undefined;
  const timer = setInterval(() => {
    const now = performance.now();
    const stalled = now - lastTick - HEARTBEAT_MS;
    lastTick = now;
    if (pingSentAt !== undefined) {
      // The answer may be waiting in the socket, unread because this process was not running.
      if (stalled > STALL_MS) pingSentAt += stalled;
      if (now - pingSentAt > LOCK_TIMEOUT_MS) {
        clearInterval(timer);
        lost(new Error(`no answer from the state store for ${Math.round((now - pingSentAt) / 1000)} s (network partition?)`));
      }
      return;
    }
    pingSentAt = now;
    client.query('select 1').then(
      () => {
        pingSentAt = undefined;
      },
      (error: Error) => {
        clearInterval(timer);
        lost(error);
      },
    );
  }, HEARTBEAT_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Ends a connection at once, without the goodbye a stalled network would hold up. */
export function destroyConnection(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Probe advisory keys: apart from the job (0x636f6e76) and run (0x636f6e77) key spaces. */
const PROBE_KEYSPACE = 0x636f6e78;

/**
 * Run before anything else touches the store (the migration's own session lock would otherwise be
 * left held by a pooled server session, blocking every later start). Refuses a state store
 * reached through a pooler in transaction (or statement) mode, such as
 * PgBouncer's `pool_mode = transaction`: there, consecutive statements of one client run on
 * whichever server session is free, so a session advisory lock is held by a server session that
 * other clients use next, and two runners could run one job at once. Tested directly: `holder`
 * takes a lock, `other` (another client of the same store) must not get it, and `holder` must
 * still own it. Behind such a pooler one of the two fails: the server session `holder` used goes
 * back to the pool and is handed to `other` next (PgBouncer reuses the most recently freed one),
 * or `holder`'s next statement lands on a session that does not hold the lock.
 */
export async function refuseTransactionPooler(connection: pg.ClientConfig): Promise<void> {
  const holder = new pg.Client(connection);
  const other = new pg.Client(connection);
  holder.on('error', () => undefined);
  other.on('error', () => undefined);
  try {
    await holder.connect();
    await other.connect();
    await probeSessions(holder, other);
  } finally {
    await Promise.all([holder.end().catch(() => undefined), other.end().catch(() => undefined)]);
  }
}

async function probeSessions(holder: pg.Client, other: pg.Client): Promise<void> {
  const key = Math.floor(Math.random() * 0x7fffffff);
  const lock = 'select pg_try_advisory_lock($1, $2) as ok';
  const took = (await holder.query<{ ok: boolean }>(lock, [PROBE_KEYSPACE, key])).rows[0]?.ok === true;
  const stolen = (await other.query(lock, [PROBE_KEYSPACE, key])).rows[0]?.ok === true;
  if (stolen) await other.query('select pg_advisory_unlock($1, $2)', [PROBE_KEYSPACE, key]);
  const kept = (await holder.query<{ ok: boolean }>('select pg_advisory_unlock($1, $2) as ok', [PROBE_KEYSPACE, key])).rows[0]?.ok === true;
  if (took && kept && !stolen) return;
  throw new ConveyError('STATE_ERROR', 'the state store is reached through a connection pooler in transaction mode (PgBouncer pool_mode = transaction, or similar): a lock one convey takes is not held against the others there, so two runners could run the same job', {
    hint: 'Point CONVEY_STATE_URL at PostgreSQL directly, or at a pool in session mode (PgBouncer pool_mode = session). Each runner opens at most 8 connections (README "Scheduling").',
  });
}
