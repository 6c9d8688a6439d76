import { join } from 'node:path';
import test from 'ava';
import type { SourceConfig } from '../src/config/project.ts';
import { openSource, type Source } from '../src/source/connect.ts';
import { describeMapping, readPages, type Mapping } from '../src/source/pages.ts';
import type { Instant } from '../src/time/instant.ts';
import { createTestProject, type TestProject } from './helpers/project.ts';

/**
 * The keyset reader against a real database: every row in the window exactly once, whatever the
 * page size, with microsecond timestamps and many rows sharing one cursor value.
 */

const mapping: Mapping = {
  sql: 'select id as conversion_id, at as occurred_at, visitor as visitor_id from events_src where at >= :window_start and at < :window_end',
  file: 'jobs/test.sql',
  cursor: 'occurred_at',
};

async function withSource(t: { teardown(fn: () => Promise<void>): void }, setup: string): Promise<{ source: Source; project: TestProject }> {
  const project = await createTestProject();
  await project.db.sourceSql(setup).catch(async (error: unknown) => {
    await project.close();
    throw error;
  });
  const config: SourceConfig =
    project.db.kind === 'postgres'
      ? { name: 'warehouse', file: 'config/default.json', client: 'pg', connection: String(project.db.sourceConfig.connection) }
      : { name: 'warehouse', file: 'config/default.json', client: 'pglite', dataDir: join(project.dir, '.convey', 'warehouse') };
  const source = await openSource(config, 'test');
  // The source first: dropping the database ends its connections.
  t.teardown(async () => {
    await source.close();
    await project.close();
  });
  return { source, project };
}

async function readAll(source: Source, window: { start: string; end: string }, pageSize: number): Promise<string[]> {
  const ids: string[] = [];
  for await (const page of readPages(source, mapping, { start: window.start as Instant, end: window.end as Instant }, { pageSize })) {
    t_assertSorted(page);
    ids.push(...page.map((r) => String(r.conversion_id)));
  }
  return ids;
}

function t_assertSorted(page: Array<Record<string, unknown>>): void {
  for (let i = 1; i < page.length; i++) {
    const a = `${String(page[i - 1]!.occurred_at)}|${String(page[i - 1]!.conversion_id)}`;
    const b = `${String(page[i]!.occurred_at)}|${String(page[i]!.conversion_id)}`;
    if (a > b) throw new Error(`page out of order: ${a} before ${b}`);
  }
}

const SETUP = `
  create table events_src (id text, at timestamptz, visitor text);
  -- seven rows sharing one cursor value, neighbours one microsecond apart, and an exact duplicate
  insert into events_src values
    ('a', '2026-03-01 00:00:00.000001+00', 'v'),
    ('b', '2026-03-01 00:00:00.000002+00', 'v'),
    ('s1', '2026-03-01 00:00:00.000003+00', 'v'), ('s2', '2026-03-01 00:00:00.000003+00', 'v'),
    ('s3', '2026-03-01 00:00:00.000003+00', 'v'), ('s4', '2026-03-01 00:00:00.000003+00', 'v'),
    ('s5', '2026-03-01 00:00:00.000003+00', 'v'), ('s6', '2026-03-01 00:00:00.000003+00', 'v'),
    ('s7', '2026-03-01 00:00:00.000003+00', 'v'),
    ('dup', '2026-03-01 00:00:00.000004+00', 'v'), ('dup', '2026-03-01 00:00:00.000004+00', 'v'),
    ('dup', '2026-03-01 00:00:00.000004+00', 'v'),
    ('c', '2026-03-01 00:00:00.000005+00', 'v'),
    ('late', '2026-03-01 00:00:01+00', 'v'),
    (null, '2026-03-01 00:00:00.000004+00', 'v');
`;

const EXPECTED = ['a', 'b', 's1', 's2', 's3', 's4', 's5', 's6', 's7', 'dup', 'dup', 'dup', 'c', 'late'];

test('every page size reads each row once, in (cursor, id) order, across shared cursor values and exact duplicates', async (t) => {
  const { source } = await withSource(t, SETUP);
  const window = { start: '2026-03-01T00:00:00.000000Z', end: '2026-03-02T00:00:00.000000Z' };
  for (const pageSize of [1, 2, 3, 4, 5, 100]) {
    t.deepEqual(await readAll(source, window, pageSize), EXPECTED, `page size ${pageSize}`);
  }
});

test('window bounds are exact to the microsecond: start inclusive, end exclusive', async (t) => {
  const { source } = await withSource(t, SETUP);
  t.deepEqual(await readAll(source, { start: '2026-03-01T00:00:00.000002Z', end: '2026-03-01T00:00:00.000004Z' }, 2), ['b', 's1', 's2', 's3', 's4', 's5', 's6', 's7']);
  t.deepEqual(await readAll(source, { start: '2026-03-01T00:00:00.000004Z', end: '2026-03-01T00:00:00.000005Z' }, 1), ['dup', 'dup', 'dup']);
  t.deepEqual(await readAll(source, { start: '2026-03-01T00:00:00.000005Z', end: '2026-03-01T00:00:00.000005Z' }, 1), []);
});

test('the cursor keeps its microseconds through the driver', async (t) => {
  const { source } = await withSource(t, SETUP);
  const [page] = await collect(readPages(source, mapping, { start: '2026-03-01T00:00:00.000000Z' as Instant, end: '2026-03-01T00:00:00.000002Z' as Instant }, { pageSize: 10 }));
  t.regex(String(page![0]!.occurred_at), /00:00:00\.000001/);
});

test('describeMapping reports unknown, missing and duplicated columns, and suggests the canonical name', async (t) => {
  const { source } = await withSource(t, 'create table events_src (id text, at timestamptz, visitor text, revenue int)');
  const window = { start: '2026-03-01T00:00:00.000000Z' as Instant, end: '2026-03-02T00:00:00.000000Z' as Instant };
  const bad: Mapping = { ...mapping, sql: 'select id as conversion_id, at as occurred_at, revenue, id as _note from events_src' };
  const error = await t.throwsAsync(describeMapping(source, bad, window));
  t.is((error as { code?: string }).code, 'MAPPING_INVALID');
  t.regex(error!.message, /no "visitor_id" column, which is required/);
  t.regex(error!.message, /returns "revenue", which is not a convey column \(did you mean "revenue_cents"\?\)/);
  t.notRegex(error!.message, /_note/, 'a column starting with _ is ignored on purpose');
  const columns = await describeMapping(source, mapping, window);
  t.deepEqual([...columns], ['conversion_id', 'occurred_at', 'visitor_id']);
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

test('the window parameters are timestamptz: arithmetic on them works, and a date cursor is read as its midnight', async (t) => {
  const { source } = await withSource(
    t,
    `create table events_src (id text, at timestamptz, visitor text, day date);
     insert into events_src values
       ('before', '2026-03-01 10:00:00+00', 'v', '2026-03-01'),
       ('inside', '2026-03-02 10:00:00+00', 'v', '2026-03-02'),
       ('after',  '2026-03-03 10:00:00+00', 'v', '2026-03-03')`,
  );
  const window = { start: '2026-03-01T12:00:00.000000Z' as Instant, end: '2026-03-02T12:00:00.000000Z' as Instant };
  // README: ":window_start and :window_end (timestamptz)". Unknown-typed, `- interval` resolved to
  // interval - interval and PostgreSQL refused the query.
  const widened: Mapping = { ...mapping, sql: `${mapping.sql.replace('at >= :window_start', "at >= :window_start - interval '1 day'")}` };
  await describeMapping(source, widened, window);
  const ids = (await collect(readPages(source, widened, window, { pageSize: 1 }))).flat().map((r) => r.conversion_id);
  t.deepEqual(ids, ['inside'], 'convey still applies the window around the SQL');
  // A date cursor: 2026-03-01 (midnight) is before the window's start, 2026-03-02 inside it.
  // Compared as dates, the window became [2026-03-01, 2026-03-02) and returned the wrong day.
  const byDay: Mapping = { sql: 'select id as conversion_id, at as occurred_at, visitor as visitor_id, day from events_src', file: 'jobs/test.sql', cursor: 'day' };
  const days = (await collect(readPages(source, byDay, window, { pageSize: 1 }))).flat().map((r) => r.conversion_id);
  t.deepEqual(days, ['inside']);
});

test('a job whose SQL ends with a semicolon and a comment after it is read', async (t) => {
  const { source } = await withSource(t, SETUP);
  const window = { start: '2026-03-01T00:00:00.000000Z' as Instant, end: '2026-03-01T00:00:00.000003Z' as Instant };
  for (const tail of [';\n-- refunds are a separate job\n', '; -- end', ';\n/* note; with a semicolon */', ' ; ; \n']) {
    const ended: Mapping = { ...mapping, sql: `${mapping.sql}${tail}` };
    await describeMapping(source, ended, window);
    const ids = (await collect(readPages(source, ended, window, { pageSize: 10 }))).flat().map((r) => r.conversion_id);
    t.deepEqual(ids, ['a', 'b'], JSON.stringify(tail));
  }
});

test('a source whose DateStyle is not ISO still gives timestamps convey reads', async (t) => {
  // A warehouse set up for European users (ALTER DATABASE … SET datestyle = 'SQL, DMY') printed
  // "01/03/2026 00:00:00.000001 UTC": every row was rejected as bad_occurred_at, then the run
  // stopped with "the cursor column … is not a timestamp". (Set before the source's first
  // connection, which reads it; the embedded PGlite has one session, started earlier.)
  const { source } = await withSource(t, `${SETUP};
    do $$ begin execute format('alter database %I set datestyle = %L', current_database(), 'SQL, DMY'); end $$`);
  const window = { start: '2026-03-01T00:00:00.000000Z' as Instant, end: '2026-03-01T00:00:00.000004Z' as Instant };
  const pages = await collect(readPages(source, mapping, window, { pageSize: 2 }));
  t.deepEqual(pages.flat().map((r) => r.conversion_id), ['a', 'b', 's1', 's2', 's3', 's4', 's5', 's6', 's7']);
  t.is(pages[0]![0]!.occurred_at, '2026-03-01 00:00:00.000001+00');
});
