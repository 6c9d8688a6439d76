import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { eventsJob, withReceiver, type SummaryJson } from './helpers/fixtures.ts';
import { createTestProject, repoRoot } from './helpers/project.ts';

/**
 * What one engine does that the others do not: DuckDB reading files in place (the route for a
 * warehouse without a driver yet: export to Parquet), and a driver package that is not installed.
 */

/** A project whose source is DuckDB in memory, with `rows` written to exports/*.parquet by DuckDB itself. */
async function parquetProject(t: { teardown(fn: () => Promise<void>): void }, select: string) {
  const project = await createTestProject();
  t.teardown(() => project.close());
  mkdirSync(join(project.dir, 'exports'));
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  // A TIMESTAMP without a zone, as an export from Snowflake's TIMESTAMP_NTZ or Spark gives it.
  await connection.run(`copy (${select}) to '${join(project.dir, 'exports', 'part-0001.parquet')}' (format parquet)`);
  connection.closeSync();
  instance.closeSync();
  writeFileSync(join(project.dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse: { client: 'duckdb' } } }));
  return project;
}

const PARQUET_SQL = `select order_id as conversion_id, closed_at as occurred_at, visitor as visitor_id, event_id, cents as revenue_cents
  from read_parquet('exports/*.parquet')
 where closed_at >= :window_start and closed_at < :window_end`;

test('duckdb: Parquet files queried in place, paths read from the project folder; a timestamp without a zone is UTC', async (t) => {
  const project = await parquetProject(
    t,
    `select 'o' || i as order_id, timestamp '2026-03-01 12:00:00' + to_microseconds(i) as closed_at, 'v' || i as visitor, '111' as event_id, 500 + i as cents from range(1000) t(i)`,
  );
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', PARQUET_SQL, eventsJob(receiver));
    const run = await project.cli(['run', 'orders', '--json']);
    t.is(run.code, 0, run.stderr);
    t.like(run.json<SummaryJson>(), { read: 1000, sent: 1000, rejected: 0 });
    const { rows } = await project.db.stateSql(`select min(cursor_value)::text as first, max(cursor_value)::text as last from convey.ledger`);
    t.deepEqual(rows[0], { first: '2026-03-01 12:00:00+00', last: '2026-03-01 12:00:00.000999+00' });
    t.is(receiver.stats().unique, 1000);
  });
});

test('duckdb: a glob that matches no file stops the run before anything is sent, naming the job and where paths are read from', async (t) => {
  const project = await parquetProject(t, `select 'o1' as order_id, timestamp '2026-03-01 12:00:00' as closed_at, 'v' as visitor, '111' as event_id, 1 as cents`);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', PARQUET_SQL.replace('exports/*.parquet', 'exports/2026-03-*.parquet'), eventsJob(receiver));
    const run = await project.cli(['run', 'orders']);
    t.is(run.code, 2, run.stderr);
    t.regex(run.stderr, /jobs\/orders\.sql: source \\"warehouse\\" refused the query: .*No files found that match the pattern \\"exports\/2026-03-\*\.parquet\\"/);
    t.regex(run.stderr, /read from the project folder/);
    t.is(receiver.stats().requests, 0);
  });
});

test('a source whose driver package is not installed stops before anything is sent and names the package to add', async (t) => {
  const project = await createTestProject();
  t.teardown(() => project.close());
  writeFileSync(join(project.dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse: { client: 'duckdb' } } }));
  project.writeJob('orders', PARQUET_SQL, { destination: { type: 'optimizely-events', accountId: '1', endpoint: 'http://127.0.0.1:9/v1/events' } });
  const child = spawn(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), '--import', join(repoRoot, 'test', 'helpers', 'hide-package.mjs'), join(repoRoot, 'src', 'cli', 'bin.ts'), 'run', 'orders'],
    { cwd: project.dir, env: { ...project.env, CONVEY_TEST_HIDE_PACKAGE: '@duckdb/node-api' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.is(code, 2, stderr);
  t.regex(stderr, /needs the package @duckdb\/node-api, which is not installed/);
  t.regex(stderr, /npm install @duckdb\/node-api/);
});

test('a source setting an engine does not take, and the retired redshift alias, stop with the file, the key and the fix', async (t) => {
  const project = await createTestProject();
  t.teardown(() => project.close());
  project.writeJob('orders', PARQUET_SQL, { destination: { type: 'optimizely-events', accountId: '1', endpoint: 'http://127.0.0.1:9/v1/events' } });
  const config = join(project.dir, 'config', 'default.json');

  writeFileSync(config, JSON.stringify({ sources: { warehouse: { client: 'redshift', connection: 'postgres://r/db' } } }));
  const redshift = await project.cli(['run', 'orders']);
  t.is(redshift.code, 2, redshift.stderr);
  t.regex(redshift.stderr, /config\/default\.json: sources\.warehouse\.client \\"redshift\\" is not supported/);
  t.regex(redshift.stderr, /UNLOAD … FORMAT PARQUET.*\\"client\\": \\"duckdb\\"/);

  // PGlite and DuckDB run inside convey: nothing to spool, and nothing else to hold a window open for.
  writeFileSync(config, JSON.stringify({ sources: { warehouse: { client: 'duckdb', spoolAfter: 'PT1M' } } }));
  const spooled = await project.cli(['run', 'orders']);
  t.is(spooled.code, 2, spooled.stderr);
  t.regex(spooled.stderr, /sources\.warehouse\.spoolAfter is not a known setting/);

  writeFileSync(config, JSON.stringify({ sources: { warehouse: { client: 'mysql', connection: 'mysql://x@127.0.0.1:1/db', spoolAfter: '30 seconds' } } }));
  const duration = await project.cli(['run', 'orders']);
  t.is(duration.code, 2, duration.stderr);
  t.regex(duration.stderr, /sources\.warehouse\.spoolAfter \\"30 seconds\\" must be an ISO 8601 duration/);
});
