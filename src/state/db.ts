import pg from 'pg';
import { ConveyError, errorMessage } from '../errors.ts';
import { destroyConnection, heartbeat, SERVER_KEEPALIVE } from './session.ts';

/** Anything that runs a bound query: a pool, a client, or a transaction. */
export interface Queryable {
  query<R extends object = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** The state database, passed to every state operation. */
export interface Db extends Queryable {
  /** Runs `fn` in one transaction on one connection; commits if it resolves, rolls back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * The connection that holds this process's session-level advisory locks. They are released by
   * the server when that connection ends, so a process killed with -9 leaves no lock behind.
   */
  lockConnection(): Promise<Queryable>;
  /**
   * Aborts if the lock connection is lost (network, server restart): the advisory locks went
   * with it, so another worker may take the job. The ledger still guards every send.
   */
  readonly lockLost: AbortSignal;
  /**
   * Whether other processes may use this store at the same time (PostgreSQL): work is then shared
   * through locks. False for the embedded store, which serves one process.
   */
  readonly concurrent: boolean;
  /**
   * A connection of its own for a transaction held open while a piece of work is done (a backfill
   * chunk's row lock); its loss aborts `lockLost` too. Undefined when the store is not
   * `concurrent`: one process owns it, so there is nothing to hold.
   */
  leaseConnection(): Promise<LeaseConnection | undefined>;
  /** Calls `handler` with the payload of each NOTIFY on `channel` (on the lock connection). */
  listen(channel: string, handler: (payload: string) => void): Promise<void>;
  close(): Promise<void>;
}

export interface LeaseConnection extends Queryable {
  /** Ends the connection (rolling back anything left open). */
  release(): Promise<void>;
}

/**
 * Timestamps come back as the server's text, not as JS Dates, so microseconds survive (see
 * time/instant.ts). int8 and numeric already arrive as strings.
 */
export const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 1184 || oid === 1114 || oid === 1082) return (value: string) => value;
    return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid);
  },
} as pg.CustomTypesConfig;

export interface PoolDbOptions {
  /** One physical connection for everything (embedded PGlite serves a single session). */
  singleConnection?: boolean;
  max?: number;
  applicationName?: string;
}

/**
 * Errors from the state store's driver become STATE_ERROR (exit 4) with the server's message,
 * not "a bug in convey": a database that went away mid-run is an operations problem.
 */
function stateError(error: unknown): never {
  if (error instanceof ConveyError) throw error;
  throw new ConveyError('STATE_ERROR', `state store: ${errorMessage(error)}`, {
    cause: error,
    hint: 'Check that the state store (CONVEY_STATE_URL, or the embedded one under .convey/) is reachable; the next run continues from what was recorded.',
  });
}

export function createPoolDb(config: pg.ClientConfig, options: PoolDbOptions = {}): Db {
  const clientConfig: pg.ClientConfig = {
    ...config,
    types: pgTypes,
    application_name: options.applicationName ?? 'convey',
  };
  const pool = new pg.Pool({
    ...clientConfig,
    max: options.singleConnection ? 1 : (options.max ?? 6),
    // The single embedded connection carries the advisory locks: it must never be closed as idle.
    idleTimeoutMillis: options.singleConnection ? 0 : 10_000,
    // UTC output in ISO style reads fastest (time/instant.ts); a database set to another
    // DateStyle gave watermarks no check could read, so every run started again from `start`.
    // Awaited before the pool hands the client out: leaving it to pg's query queue prints a
    // deprecation warning in pg 8 and breaks in pg 9.
    onConnect: async (client) => {
      await client.query("set time zone 'UTC'; set datestyle to 'ISO'");
    },
  });
  // An idle client that loses its connection emits here; without a listener it would crash the process.
  pool.on('error', () => undefined);
  let lockClient: Promise<pg.Client> | undefined;
  const leases = new Set<pg.Client>();
  const lockLost = new AbortController();
  let closing = false;
  let stopHeartbeat = (): void => undefined;

  // Once one claim may be gone, none is trusted: every connection that holds one is ended at
  // once, so that when the network comes back the server frees what this process still held.
  const lost = (error?: Error): void => {
    if (closing || lockLost.signal.aborted) return;
    lockLost.abort(error ?? new Error('the lock connection ended'));
    stopHeartbeat();
    void lockClient?.then(destroyConnection, () => undefined);
    for (const lease of leases) destroyConnection(lease);
  };

  /** A connection that holds claims: watched, and told to let the server notice its loss. */
  const connectHolding = async (applicationName: string): Promise<pg.Client> => {
    const client = new pg.Client({ ...clientConfig, application_name: applicationName });
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect().catch(stateError);
    await client.query(SERVER_KEEPALIVE).catch(stateError);
    return client;
  };

  const openLockClient = async (): Promise<pg.Client> => {
    const client = await connectHolding(`${clientConfig.application_name}-lock`);
    stopHeartbeat = heartbeat(client, lost);
    return client;
  };

  return {
    query: (text, values) => pool.query(text, values).catch(stateError) as never,
    async transaction(fn) {
      const client = await pool.connect().catch(stateError);
      // The pool listens for errors only on idle clients: a connection dropped while checked out
      // emits 'error' with no listener, an uncaught exception that killed the process (exit 1)
      // instead of failing this transaction (its query rejects too) as a STATE_ERROR.
      let broken: Error | undefined;
      const onError = (error: Error): void => {
        broken ??= error;
      };
      client.on('error', onError);
      try {
        await client.query('begin');
        const result = await fn(client as Queryable);
        await client.query('commit');
        return result;
      } catch (error) {
        await client.query('rollback').catch(() => undefined);
        return stateError(error);
      } finally {
        // With the error, the pool discards the connection instead of handing it out again.
        client.release(broken);
        client.removeListener('error', onError);
      }
    },
    async lockConnection() {
      if (options.singleConnection) return pool as Queryable;
      lockClient ??= openLockClient();
      return (await lockClient) as Queryable;
    },
    concurrent: !options.singleConnection,
    async leaseConnection() {
      if (options.singleConnection) return undefined;
      await (lockClient ??= openLockClient());
      const client = await connectHolding(`${clientConfig.application_name}-lease`);
      // A transaction held for minutes must not be ended by a store's idle-in-transaction limit.
      await client.query('set idle_in_transaction_session_timeout = 0').catch(stateError);
      leases.add(client);
      return {
        query: (text, values) => client.query(text, values).catch(stateError) as never,
        async release() {
          leases.delete(client);
          // Ended on purpose: not a lost claim.
          client.removeAllListeners('end');
          client.removeAllListeners('error');
          client.on('error', () => undefined);
          await client.end().catch(() => undefined);
        },
      };
    },
    async listen(channel, handler) {
      if (options.singleConnection) return;
      const client = await (lockClient ??= openLockClient());
      client.on('notification', (message) => {
        if (message.channel === channel && message.payload !== undefined) handler(message.payload);
      });
      await client.query(`listen ${pg.escapeIdentifier(channel)}`).catch(stateError);
    },
    lockLost: lockLost.signal,
    async close() {
      closing = true;
      stopHeartbeat();
      for (const lease of leases) await lease.end().catch(() => undefined);
      await lockClient?.then((client) => client.end()).catch(() => undefined);
      await pool.end();
    },
  };
}
