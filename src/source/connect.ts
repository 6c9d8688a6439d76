import knexFactory, { type Knex } from 'knex';
import type { SourceConfig } from '../config/project.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../embedded/pglite.ts';
import { ConveyError, errorMessage } from '../errors.ts';
import { pgTypes } from '../state/db.ts';
import { quietKnex } from '../state/migrate.ts';
import { bindNamed } from './bind.ts';
import type pg from 'pg';

export type SourceRow = Record<string, unknown>;

/**
 * json and jsonb arrive as text too: JSON.parse would put integer-like keys (experiment ids) in
 * numeric order, and the classic call sends its x parameters in the order the SQL wrote them.
 * The row checker parses them (check/json-entries.ts).
 */
const sourceTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 114 || oid === 3802) return (value: string) => value;
    return pgTypes.getTypeParser(oid as never, format as never);
  },
} as pg.CustomTypesConfig;

/** A SQL source, reached through knex. Only `raw` queries with bound parameters are run. */
export interface Source {
  name: string;
  /** Runs SQL with named parameters written `:name`, bound (never spliced); `types` casts some of them. */
  query(sql: string, params: Record<string, unknown>, types?: Readonly<Record<string, string>>): Promise<{ rows: SourceRow[]; columns: string[] }>;
  close(): Promise<void>;
}

/**
 * Opens a source: PostgreSQL or Redshift with knex's pg client, or an embedded PGlite folder served
 * on a loopback port (same driver, same SQL). Timestamps arrive as text to keep microseconds.
 */
export async function openSource(config: SourceConfig, command: string): Promise<Source> {
  let embedded: EmbeddedPostgres | undefined;
  let connection: Knex.PgConnectionConfig;
  if (config.client === 'pglite') {
    embedded = await startEmbeddedPostgres(config.dataDir!, command);
    connection = { ...(embedded.connection as Knex.PgConnectionConfig) };
  } else {
    connection =
      typeof config.connection === 'string'
        ? { connectionString: config.connection }
        : { ...(config.connection as Knex.PgConnectionConfig) };
  }
  const knex = knexFactory({
    client: 'pg',
    connection: {
      ...connection,
      types: sourceTypes,
      application_name: 'convey',
      ...(config.statementTimeoutMs ? { statement_timeout: config.statementTimeoutMs } : {}),
    } as Knex.PgConnectionConfig,
    pool: {
      min: 0,
      max: embedded ? 1 : (config.poolMax ?? 2),
      // Timestamps then come back as `…+00`, which is read without any date arithmetic
      // (time/instant.ts). The output style is set too: a database or role set to
      // `datestyle = 'SQL, DMY'` printed `01/03/2026 10:00:00 UTC`, which no row check reads.
      // Redshift accepts the same statements.
      afterCreate: (connection: pg.Client, done: (error: Error | null, connection: pg.Client) => void) => {
        // An idle connection the server drops emits 'error'; unheard, it would end the process.
        // The next query on it fails and is reported as a SOURCE_ERROR instead.
        connection.on('error', () => undefined);
        connection.query("set time zone 'UTC'; set datestyle to 'ISO'").then(() => done(null, connection), (error: Error) => done(error, connection));
      },
    },
    log: quietKnex,
  });
  return {
    name: config.name,
    async query(sql, params, types) {
      const bound = bindNamed(sql, params, types);
      type Result = { rows: SourceRow[]; fields: Array<{ name: string }> };
      let connection: pg.Client | undefined;
      try {
        // knex manages the pool; the statement goes to pg as bound (see bind.ts for why).
        connection = (await knex.client.acquireConnection()) as pg.Client;
        const raw = (await connection.query(bound.text, bound.values)) as unknown as Result | Result[];
        // A script of several statements (the demo's seed) answers with one result each.
        const result = Array.isArray(raw) ? raw[raw.length - 1]! : raw;
        return { rows: result.rows, columns: result.fields.map((f) => f.name) };
      } catch (error) {
        throw new ConveyError('SOURCE_ERROR', `source "${config.name}" refused the query: ${errorMessage(error)}`, {
          cause: error,
          hint: connectionHint(error, config),
        });
      } finally {
        if (connection) await knex.client.releaseConnection(connection);
      }
    },
    async close() {
      await knex.destroy();
      await embedded?.close();
    },
  };
}

function connectionHint(error: unknown, config: SourceConfig): string {
  const code = (error as { code?: string }).code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === '28P01' || code === '3D000') {
    return `Check the connection of source "${config.name}" in ${config.file} (and the environment variables it reads).`;
  }
  return 'Run the job\'s SQL in your SQL client with :window_start and :window_end replaced by two timestamps to see the problem.';
}
