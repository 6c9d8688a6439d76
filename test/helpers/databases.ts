import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/embedded/pglite.ts';
import { pgTypes } from '../../src/state/db.ts';

/**
 * Where a test file keeps its state and its source tables. With TEST_DATABASE_URL (CI: the
 * machine's PostgreSQL) each test file gets its own database, created empty and dropped at the
 * end. Without it, everything runs on embedded PGlite folders in a temporary directory, the
 * default a newcomer gets: every suite passes both ways.
 */
export interface TestDatabases {
  kind: 'postgres' | 'embedded';
  /** Value for CONVEY_STATE_URL, or undefined for the embedded store under <project>/.convey/. */
  stateUrl: string | undefined;
  /** The `sources.warehouse` entry for config/default.json. */
  sourceConfig: Record<string, unknown>;
  /** Runs SQL against the source (to create and fill tables). */
  sourceSql(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  /** Runs SQL against the state store (to inspect the ledger). */
  stateSql(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  close(): Promise<void>;
}

export const usingPostgres = Boolean(process.env.TEST_DATABASE_URL);

/**
 * A fresh pair of databases for one test (or one test file). `projectDir` is where an embedded
 * store would live (<projectDir>/.convey/state) and where the embedded source folder is made.
 */
export async function testDatabases(projectDir: string): Promise<TestDatabases> {
  return usingPostgres ? postgresDatabases() : embeddedDatabases(projectDir);
}

async function postgresDatabases(): Promise<TestDatabases> {
  const admin = new URL(process.env.TEST_DATABASE_URL!);
  const name = `convey_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const adminClient = new pg.Client({ connectionString: admin.toString() });
  await adminClient.connect();
  await adminClient.query(`create database ${name}`);
  await adminClient.end();
  const url = new URL(admin.toString());
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2, types: pgTypes });
  // pool.end() resolves before its connections have closed, so `drop database … with (force)`
  // below can still reach one: the server's "terminating connection" then arrives as a pool
  // 'error', which would be an uncaught exception in the test file without a listener.
  pool.on('error', () => undefined);
  return {
    kind: 'postgres',
    stateUrl: url.toString(),
    sourceConfig: { client: 'pg', connection: url.toString() },
    sourceSql: (sql, values) => pool.query(sql, values),
    stateSql: (sql, values) => pool.query(sql, values),
    async close() {
      await pool.end();
      const c = new pg.Client({ connectionString: admin.toString() });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

async function embeddedDatabases(projectDir: string): Promise<TestDatabases> {
  const sourceDir = join(projectDir, '.convey', 'warehouse');
  const stateDir = join(projectDir, '.convey', 'state');
  seedFromTemplate(sourceDir);
  seedFromTemplate(stateDir);
  // Through the same embedded server and pg driver convey uses, so values come back alike. Each
  // call opens and closes the folder, and takes its lock file: a test cannot touch a folder
  // while convey has it open (two processes on one folder lose writes).
  const run = async (dir: string, sql: string, values?: unknown[]): Promise<pg.QueryResult> => {
    const server = await startEmbeddedPostgres(dir, 'test');
    const client = new pg.Client({ ...server.connection, types: pgTypes });
    try {
      await client.connect();
      const result = (await client.query(sql, values)) as pg.QueryResult | pg.QueryResult[];
      return Array.isArray(result) ? result[result.length - 1]! : result;
    } finally {
      await client.end();
      await server.close();
    }
  };
  return {
    kind: 'embedded',
    stateUrl: undefined,
    sourceConfig: { client: 'pglite', dataDir: '.convey/warehouse' },
    sourceSql: (sql, values) => run(sourceDir, sql, values),
    stateSql: (sql, values) => run(stateDir, sql, values),
    close: async () => undefined,
  };
}

/**
 * Creating a PGlite folder runs initdb (about 4 s here); copying an initialised one takes
 * about 0.1 s. The template is made once per machine, in the temporary directory.
 */
function seedFromTemplate(dir: string): void {
  if (existsSync(dir)) return;
  cpSync(pgliteTemplate(), dir, { recursive: true });
}

let template: string | undefined;

export function pgliteTemplate(): string {
  if (template) return template;
  const path = join(tmpdir(), 'convey-test-pglite-template-v1');
  if (!existsSync(path)) {
    // initdb in a child process (PGlite's API is async; this helper is called synchronously).
    const staging = mkdtempSync(join(tmpdir(), 'convey-pglite-staging-'));
    const script = `import { PGlite } from '@electric-sql/pglite'; const db = await PGlite.create(${JSON.stringify(join(staging, 'db'))}); await db.close();`;
    const { status, stderr } = spawnSyncNode(script);
    if (status !== 0) throw new Error(`cannot create the PGlite template: ${stderr}`);
    try {
      renameSync(join(staging, 'db'), path);
    } catch {
      // another test process made it first
    }
    rmSync(staging, { recursive: true, force: true });
  }
  template = path;
  return path;
}

function spawnSyncNode(script: string): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}
