import type { Knex } from 'knex';
import pg from 'pg';
import { migrations } from '../../migrations/index.ts';

const migrationSource: Knex.MigrationSource<(typeof migrations)[number]> = {
  getMigrations: () => Promise.resolve(migrations),
  getMigrationName: (m) => m.name,
  getMigration: (m) => Promise.resolve(m),
};

/**
 * knex is loaded only when the schema must change (or be listed by `convey migrate`): loading it
 * took 150 ms and 10 MB of every run's memory, for a schema that is nearly always up to date
 * (`applied` says so with one query).
 */
async function connect(connection: pg.ClientConfig): Promise<Knex> {
  const { default: knexFactory } = await import('knex');
  return knexFactory({ client: 'pg', connection: connection as Knex.PgConnectionConfig, pool: { min: 0, max: 1 }, log: quietKnex });
}

/**
 * The names of the migrations the store records as applied, read with one query (knex keeps them
 * in convey.knex_migrations); undefined when the store has no convey schema yet.
 */
async function applied(connection: pg.ClientConfig): Promise<string[] | undefined> {
  const client = new pg.Client(connection);
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ present: boolean }>(`select to_regclass('convey.knex_migrations') is not null as present`);
    if (!rows[0]?.present) return undefined;
    return (await client.query<{ name: string }>('select name from convey.knex_migrations')).rows.map((r) => r.name);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Every migration this convey knows is applied, and none it does not know (knex refuses that case with its own message). */
function upToDate(names: string[] | undefined): boolean {
  return names !== undefined && names.length === migrations.length && migrations.every((m) => names.includes(m.name));
}

/** knex prints connection errors to the console itself; convey reports them once, with a hint. */
export const quietKnex: Knex.Config['log'] = { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined };

const config: Knex.MigratorConfig = { migrationSource, schemaName: 'convey', tableName: 'knex_migrations' };

/** Single-bigint advisory key ('convmig'): apart from the two-int4 job and run locks. */
const MIGRATION_LOCK_KEY = '27988542918322535';

/**
 * Runs `fn` holding a session advisory lock, so workers starting together change the schema one
 * after the other. knex's own lock table does not cover its bootstrap: on a new store, workers
 * racing through `create schema if not exists` and the creation of knex's tables failed with
 * "duplicate key value violates unique constraint" (exit 4 instead of 75), and two of them could
 * each insert a lock row, after which every start failed with "Migration table is already locked".
 */
async function serialized<T>(connection: pg.ClientConfig, fn: () => Promise<T>): Promise<T> {
  const client = new pg.Client(connection);
  // A dropped connection fails the query below or ends the lock; it must not be an uncaught error.
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    return await fn();
  } finally {
    // Ending the session releases the lock.
    await client.end().catch(() => undefined);
  }
}

/**
 * Brings the state schema up to date with knex's migrator, one worker at a time (see
 * `serialized`). Returns the names it applied. The embedded store needs no lock (its lock file
 * admits one process) and must not get one: it serves a single session.
 */
export async function migrateLatest(connection: pg.ClientConfig, options: { embedded?: boolean } = {}): Promise<string[]> {
  if (upToDate(await applied(connection))) return [];
  const apply = async (): Promise<string[]> => {
    const knex = await connect(connection);
    try {
      await knex.raw('create schema if not exists convey');
      const [, applied] = (await knex.migrate.latest(config)) as [number, string[]];
      return applied;
    } finally {
      await knex.destroy();
    }
  };
  return options.embedded ? apply() : serialized(connection, apply);
}

/** Rolls every convey migration back: drops all state. */
export async function migrateDownAll(connection: pg.ClientConfig): Promise<string[]> {
  const knex = await connect(connection);
  try {
    await knex.raw('create schema if not exists convey');
    const [, reverted] = (await knex.migrate.rollback(config, true)) as [number, string[]];
    return reverted;
  } finally {
    await knex.destroy();
  }
}

export async function pendingMigrations(connection: pg.ClientConfig): Promise<string[]> {
  const names = await applied(connection);
  return migrations.map((m) => m.name).filter((name) => !names?.includes(name));
}
