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
    throw new ConveyError('STATE_ERROR', `cannot prepare the state store (${describeLocation(location)}): ${(error as Error).message}`, {
      cause: error,
      hint:
        location.kind === 'postgres'
          ? 'Check CONVEY_STATE_URL points at a reachable PostgreSQL database and that the user may create the schema "convey".'
          : 'Check the folder is writable.',
    });
  }
  const db = createPoolDb(connection, { singleConnection: location.kind === 'embedded' });
  return {
    db,
    location,
    connection,
    migrate: () => migrateLatest(connection, migrateOptions),
    describeHolder: (info) => embedded?.describeHolder(info),
    async close() {
      await db.close();
      await embedded?.close();
    },
  };
}
