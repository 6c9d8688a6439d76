import knexFactory, { type Knex } from 'knex';
import type pg from 'pg';
import { migrations } from '../../migrations/index.ts';

const migrationSource: Knex.MigrationSource<(typeof migrations)[number]> = {
  getMigrations: () => Promise.resolve(migrations),
  getMigrationName: (m) => m.name,
  getMigration: (m) => Promise.resolve(m),
};

function connect(connection: pg.ClientConfig): Knex {
  return knexFactory({ client: 'pg', connection: connection as Knex.PgConnectionConfig, pool: { min: 0, max: 1 }, log: quietKnex });
}

/** knex prints connection errors to the console itself; convey reports them once, with a hint. */
export const quietKnex: Knex.Config['log'] = { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined };

const config: Knex.MigratorConfig = { migrationSource, schemaName: 'convey', tableName: 'knex_migrations' };

/**
 * Brings the state schema up to date with knex's migrator (which takes its own lock table, so
 * several workers starting at once apply each migration once). Returns the names it applied.
 */
export async function migrateLatest(connection: pg.ClientConfig): Promise<string[]> {
  const knex = connect(connection);
  try {
    await knex.raw('create schema if not exists convey');
    const [, applied] = (await knex.migrate.latest(config)) as [number, string[]];
    return applied;
  } finally {
    await knex.destroy();
  }
}

/** Rolls every convey migration back: drops all state. */
export async function migrateDownAll(connection: pg.ClientConfig): Promise<string[]> {
  const knex = connect(connection);
  try {
    await knex.raw('create schema if not exists convey');
    const [, reverted] = (await knex.migrate.rollback(config, true)) as [number, string[]];
    return reverted;
  } finally {
    await knex.destroy();
  }
}

export async function pendingMigrations(connection: pg.ClientConfig): Promise<string[]> {
  const knex = connect(connection);
  try {
    const exists = await knex.raw(`select to_regclass('convey.knex_migrations') is not null as present`);
    if (!(exists.rows as Array<{ present: boolean }>)[0]?.present) return migrations.map((m) => m.name);
    const [, pending] = (await knex.migrate.list(config)) as [unknown[], Array<{ name?: string } | string>];
    return pending.map((p) => (typeof p === 'string' ? p : String(p.name ?? p)));
  } finally {
    await knex.destroy();
  }
}
