import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/embedded/pglite.ts';
import { pgliteTemplate } from './databases.ts';

/**
 * Every engine the source contract runs on, as a fixture: a fresh database per test, the
 * `sources.warehouse` entry that reads it, and what the contract needs to create tables and fill
 * them, make the source unreachable, or put a relay in front of it. Adding an engine is one entry
 * here (and its driver folder under src/source/).
 *
 * Engines that need a server are registered only where one is configured: PostgreSQL with
 * TEST_DATABASE_URL, MariaDB/MySQL with TEST_MYSQL_URL (`.ci/run` sets both). PGlite and DuckDB
 * run in the test process, always.
 */
export interface EngineFixture {
  name: string;
  location: 'server' | 'in-process';
  /** Column types for the contract's table. */
  types: { text: string; instant: string; naive: string; bigint: string; json: string };
  /** A function the engine does not have, with its arguments: a mapping using it is broken. */
  missingFunction: string;
  /** A condition that keeps a query busy for a minute or more, or undefined where a running query cannot be stopped (PGlite). */
  slowCondition: string | undefined;
  create(projectDir: string): Promise<EngineDatabase>;
}

export interface EngineDatabase {
  /** The source entry for config/default.json. */
  config: Record<string, unknown>;
  /** Runs one statement. */
  sql(statement: string): Promise<void>;
  /** Inserts rows; an instant is written as ISO 8601 UTC text (`2026-03-01T00:00:00.000001Z`). */
  insert(table: string, rows: Array<Record<string, string | number | null>>): Promise<void>;
  /** A source entry of the same engine that cannot be reached. */
  unreachable: Record<string, unknown>;
  /** Server engines: where the server listens, and the same source entry reached through another port. */
  server?: {
    host: string;
    port: number;
    through(port: number): Record<string, unknown>;
    /** Statements of convey's still open on the server (running, or a result not read to its end). */
    openReads(): Promise<number>;
  };
  /** Makes the engine's own notion of "local time" something other than UTC for the next connections. */
  foreignZone(): Promise<void>;
  close(): Promise<void>;
}

const unique = (): string => `convey_src_${process.pid}_${randomBytes(4).toString('hex')}`;

/** Writes rows with one bound INSERT; `mark(i)` is the engine's placeholder for the i-th value. */
function insertStatement(table: string, rows: Array<Record<string, unknown>>, mark: (i: number) => string): { text: string; values: unknown[] } {
  const columns = Object.keys(rows[0]!);
  const values: unknown[] = [];
  const tuples = rows.map((row) => `(${columns.map((c) => (values.push(row[c] ?? null), mark(values.length))).join(', ')})`);
  return { text: `insert into ${table} (${columns.join(', ')}) values ${tuples.join(', ')}`, values };
}

const postgresTypes = { text: 'text', instant: 'timestamptz', naive: 'timestamp', bigint: 'bigint', json: 'json' };

const postgres: EngineFixture = {
  name: 'postgres',
  location: 'server',
  types: postgresTypes,
  missingFunction: 'json_build_thing(1)',
  slowCondition: 'pg_sleep(120) is not null',
  async create() {
    const admin = new URL(process.env.TEST_DATABASE_URL!);
    const name = unique();
    const query = async (url: string, statement: string, values?: unknown[]): Promise<pg.QueryResult> => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return await client.query(statement, values);
      } finally {
        await client.end();
      }
    };
    const run = async (url: string, statement: string, values?: unknown[]): Promise<void> => void (await query(url, statement, values));
    await run(admin.toString(), `create database ${name}`);
    const url = new URL(admin.toString());
    url.pathname = `/${name}`;
    const through = (port: number): Record<string, unknown> => {
      const via = new URL(url.toString());
      via.hostname = '127.0.0.1';
      via.port = String(port);
      return { client: 'pg', connection: via.toString() };
    };
    return {
      config: { client: 'pg', connection: url.toString() },
      sql: (statement) => run(url.toString(), statement),
      async insert(table, rows) {
        const { text, values } = insertStatement(table, rows, (i) => `$${i}`);
        await run(url.toString(), text, values);
      },
      unreachable: { client: 'pg', connection: 'postgres://postgres@127.0.0.1:1/none' },
      server: {
        host: admin.hostname,
        port: Number(admin.port || 5432),
        through,
        // A portal between fetches is 'idle in transaction': its snapshot is still held.
        openReads: async () =>
          Number(
            (await query(admin.toString(), `select count(*)::int as n from pg_stat_activity where datname = $1 and application_name = 'convey' and (state = 'active' or state like 'idle in transaction%')`, [name]))
              .rows[0].n,
          ),
      },
      foreignZone: () => run(url.toString(), `alter database ${name} set timezone to 'America/New_York'`),
      close: () => run(admin.toString(), `drop database if exists ${name} with (force)`),
    };
  },
};

const pglite: EngineFixture = {
  name: 'pglite',
  location: 'in-process',
  types: postgresTypes,
  missingFunction: 'json_build_thing(1)',
  // PGlite runs queries on the test's own thread: a sleeping one would stop the test too.
  slowCondition: undefined,
  async create(projectDir) {
    const dataDir = join(projectDir, 'contract-warehouse');
    mkdirSync(projectDir, { recursive: true });
    cpSync(pgliteTemplate(), dataDir, { recursive: true });
    // Opened for each statement: convey takes the folder's lock while it reads.
    const run = async (statement: string, values?: unknown[]): Promise<void> => {
      const server = await startEmbeddedPostgres(dataDir, 'test');
      const client = new pg.Client(server.connection);
      try {
        await client.connect();
        await client.query(statement, values);
      } finally {
        await client.end();
        await server.close();
      }
    };
    return {
      config: { client: 'pglite', dataDir: 'contract-warehouse' },
      sql: (statement) => run(statement),
      async insert(table, rows) {
        const { text, values } = insertStatement(table, rows, (i) => `$${i}`);
        await run(text, values);
      },
      unreachable: { client: 'pglite', dataDir: 'no-such-folder' },
      // PGlite starts every session in UTC, whatever the database or role says (measured: `alter
      // role … set timezone` is not applied on reopen). The test process's own zone (set by the
      // contract file) is the other zone in play.
      foreignZone: async () => undefined,
      close: async () => undefined,
    };
  },
};

const duckdb: EngineFixture = {
  name: 'duckdb',
  location: 'in-process',
  types: { text: 'VARCHAR', instant: 'TIMESTAMPTZ', naive: 'TIMESTAMP', bigint: 'BIGINT', json: 'JSON' },
  missingFunction: 'json_build_thing(1)',
  // Minutes of arithmetic on every core; DuckDB has no sleep.
  slowCondition: '(select sum(i) from range(1000000000000) t(i)) > 0',
  async create(projectDir) {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const path = join(projectDir, 'warehouse.duckdb');
    // Written by its own instance, closed before convey opens the file (read-only) in the same process.
    const run = async (statement: string, values?: unknown[]): Promise<void> => {
      const instance = await DuckDBInstance.create(path);
      const connection = await instance.connect();
      try {
        await connection.run("SET TimeZone = 'UTC'");
        await connection.run(statement, values as never);
      } finally {
        connection.closeSync();
        instance.closeSync();
      }
    };
    await run('select 1');
    return {
      config: { client: 'duckdb', path: 'warehouse.duckdb' },
      sql: (statement) => run(statement),
      async insert(table, rows) {
        const { text, values } = insertStatement(table, rows, (i) => `$${i}`);
        await run(text, values);
      },
      unreachable: { client: 'duckdb', path: 'no-such-file.duckdb' },
      // In the process: its zone is the process's (the contract file sets one other than UTC).
      foreignZone: async () => undefined,
      close: async () => undefined,
    };
  },
};

const mariadb: EngineFixture = {
  name: 'mariadb',
  location: 'server',
  types: { text: 'varchar(100)', instant: 'timestamp(6) null default null', naive: 'datetime(6)', bigint: 'bigint', json: 'json' },
  missingFunction: 'json_build_thing(1)',
  slowCondition: 'sleep(120) = 0',
  async create() {
    const mysql = (await import('mysql2/promise')).default;
    const admin = new URL(process.env.TEST_MYSQL_URL!);
    const name = unique();
    const connect = async (database?: string) => {
      const url = new URL(admin.toString());
      if (database) url.pathname = `/${database}`;
      const connection = await mysql.createConnection({ uri: url.toString(), dateStrings: true });
      // The fixture's own writes are in UTC whatever the server's zone (foreignZone changes it).
      await connection.query("set time_zone = '+00:00'");
      return connection;
    };
    const run = async (statement: string, values?: unknown[], database: string | null = name): Promise<void> => {
      const connection = await connect(database ?? undefined);
      try {
        await connection.query(statement, values);
      } finally {
        await connection.end();
      }
    };
    await run(`create database ${name}`, [], null);
    const url = new URL(admin.toString());
    url.pathname = `/${name}`;
    let zoneBefore: string | undefined;
    return {
      config: { client: 'mysql', connection: url.toString() },
      sql: (statement) => run(statement),
      async insert(table, rows) {
        // MySQL reads a DATETIME literal without a zone; the session is UTC.
        const plain = rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === 'string' && /^\d{4}-\d\d-\d\dT.*Z$/.test(v) ? v.slice(0, -1).replace('T', ' ') : v])));
        const { text, values } = insertStatement(table, plain, () => '?');
        await run(text, values);
      },
      unreachable: { client: 'mysql', connection: 'mysql://root@127.0.0.1:1/none' },
      server: {
        host: admin.hostname,
        port: Number(admin.port || 3306),
        through(port) {
          const via = new URL(url.toString());
          via.hostname = '127.0.0.1';
          via.port = String(port);
          return { client: 'mysql', connection: via.toString() };
        },
        async openReads() {
          const connection = await connect();
          try {
            const [rows] = await connection.query(`select count(*) as n from information_schema.processlist where db = ? and command <> 'Sleep' and info like '%convey_mapping%'`, [name]);
            return Number((rows as Array<{ n: number }>)[0]!.n);
          } finally {
            await connection.end();
          }
        },
      },
      async foreignZone() {
        const connection = await connect();
        try {
          const [rows] = await connection.query('select @@global.time_zone as zone');
          zoneBefore ??= (rows as Array<{ zone: string }>)[0]!.zone;
          await connection.query("set global time_zone = '-05:00'");
        } finally {
          await connection.end();
        }
      },
      async close() {
        if (zoneBefore) await run('set global time_zone = ?', [zoneBefore], null);
        await run(`drop database if exists ${name}`, [], null);
      },
    };
  },
};

/** The engines this run of the suite can reach. */
export function contractEngines(): EngineFixture[] {
  return [pglite, duckdb, ...(process.env.TEST_DATABASE_URL ? [postgres] : []), ...(process.env.TEST_MYSQL_URL ? [mariadb] : [])];
}
