import { join } from 'node:path';
import type pg from 'pg';
import { ConveyError, isConveyError } from '../errors.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../embedded/pglite.ts';
import { createPoolDb, type Db } from './db.ts';
import { migrateLatest } from './migrate.ts';
import { refuseTransactionPooler } from './session.ts';

export type StateLocation =
  | { kind: 'postgres'; url: string }
  | { kind: 'embedded'; dataDir: string };

export interface StateStore {
  db: Db;
  location: StateLocation;
  /** How to reach it with another client (knex's migrator). */
  connection: pg.ClientConfig;
  /** Applies pending migrations; returns their names. */
  migrate(): Promise<string[]>;
  /** Embedded only: records who holds the store, for the message a second process gets. */
  describeHolder(info: Record<string, unknown>): void;
  close(): Promise<void>;
}

/** CONVEY_STATE_URL selects PostgreSQL; unset, the state lives embedded under <project>/.convey/. */
export function stateLocation(projectDir: string, env: NodeJS.ProcessEnv): StateLocation {
  const url = env.CONVEY_STATE_URL;
  if (url) return { kind: 'postgres', url };
  return { kind: 'embedded', dataDir: join(projectDir, '.convey', 'state') };
}

export function describeLocation(location: StateLocation): string {
  if (location.kind === 'embedded') return `embedded PostgreSQL in ${location.dataDir}`;
  try {
    const u = new URL(location.url);
    return `PostgreSQL ${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'PostgreSQL (CONVEY_STATE_URL)';
  }
}

/**
 * Opens the state store and brings its schema up to date. Migrating on open keeps the newcomer
 * path to one command; `migrateLatest` takes an advisory lock, so workers starting together
 * prepare it one at a time.
 */
export async function openStateStore(location: StateLocation, command: string, migrate = true): Promise<StateStore> {
  let embedded: EmbeddedPostgres | undefined;
  let connection: pg.ClientConfig;
  const migrateOptions = { embedded: location.kind === 'embedded' };
  if (location.kind === 'embedded') {
    embedded = await startEmbeddedPostgres(location.dataDir, command);
    connection = embedded.connection;
  } else {
    connection = { connectionString: location.url };
  }
  try {
    if (location.kind === 'postgres') await refuseTransactionPooler(connection);
    if (migrate) await migrateLatest(connection, migrateOptions);
  } catch (error) {
    if (isConveyError(error)) throw error;
    await embedded?.close();
    throw stateStoreError(error, location);
  }
  const db = createPoolDb(connection, { singleConnection: location.kind === 'embedded' });
  return {
    db,
    location,
    connection,
    // `convey migrate` opens without migrating and calls this: its errors are the store's too.
    migrate: () =>
      migrateLatest(connection, migrateOptions).catch((error: unknown) => {
        throw stateStoreError(error, location);
      }),
    describeHolder: (info) => embedded?.describeHolder(info),
    async close() {
      await db.close();
      await embedded?.close();
    },
  };
}

/**
 * What the state store's driver threw while convey opened, read or migrated it, as STATE_ERROR
 * (exit 4): the store is unreachable or unusable, an operations problem, never "a bug in convey".
 * A database that does not exist (SQLSTATE 3D000) gets its own message: the server is there and
 * answers, so "check it is reachable" would send the reader the wrong way; the fix is to create it.
 */
export function stateStoreError(error: unknown, location: StateLocation, doing = 'prepare'): ConveyError {
  if (isConveyError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (location.kind === 'postgres' && (error as { code?: unknown } | null)?.code === '3D000') {
    const name = /database "(.+)" does not exist/.exec(message)?.[1] ?? databaseOf(location.url);
    const server = serverOf(location.url);
    return new ConveyError('STATE_ERROR', `the state database "${name}" does not exist (${describeLocation(location)})`, {
      cause: error,
      hint:
        `Create it (createdb${server.host ? ` -h ${server.host}` : ''}${server.port ? ` -p ${server.port}` : ''}${server.user ? ` -U ${server.user}` : ''} ${name}, or CREATE DATABASE "${name}"), ` +
        'or point CONVEY_STATE_URL at a database that exists; convey creates its schema "convey" in it on the first run (or with convey migrate).',
    });
  }
  return new ConveyError('STATE_ERROR', `cannot ${doing} the state store (${describeLocation(location)}): ${message}`, {
    cause: error,
    hint:
      location.kind === 'postgres'
        ? 'Check CONVEY_STATE_URL points at a reachable PostgreSQL database and that the user may create the schema "convey".'
        : 'Check the folder is writable.',
  });
}

function databaseOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1));
  } catch {
    return '(the database in CONVEY_STATE_URL)';
  }
}

/** Host, port and user of the URL, for the createdb line; never its password. */
function serverOf(url: string): { host?: string; port?: string; user?: string } {
  try {
    const u = new URL(url);
    return { ...(u.hostname ? { host: u.hostname } : {}), ...(u.port ? { port: u.port } : {}), ...(u.username ? { user: decodeURIComponent(u.username) } : {}) };
  } catch {
    return {};
  }
}
