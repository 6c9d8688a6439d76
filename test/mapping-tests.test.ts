import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { TestsDocument } from '../src/mapping-tests/tests-file.ts';
import { CLASSIC_FOR_TESTS, CONVERSIONS_SQL, insertRows, PHONE_ORDERS_SQL, projectWithRows, rows } from './helpers/fixtures.ts';
import { createTestProject, type TestProject } from './helpers/project.ts';

// Serial: each test starts an in-memory PGlite in this process; four at once on a loaded 2-core
// machine stalled the embedded socket server past knex's 60 s wait for a connection.

const TABLES = { phone_orders: { columns: { order_id: 'text', closed_at: 'timestamptz', visitor: 'text', kind: 'text', total_cents: 'integer', bucketing: 'json' } } };

function writeTests(project: TestProject, job: string, document: TestsDocument): void {
  writeFileSync(join(project.dir, 'jobs', `${job}.tests.json`), JSON.stringify(document, null, 2));
}

const readTests = (project: TestProject, job: string): TestsDocument => JSON.parse(readFileSync(join(project.dir, 'jobs', `${job}.tests.json`), 'utf8')) as TestsDocument;

async function project(t: { teardown(fn: () => Promise<void>): void }): Promise<TestProject> {
  const p = await createTestProject();
  t.teardown(() => p.close());
  p.writeJob('orders', PHONE_ORDERS_SQL, CLASSIC_FOR_TESTS);
  return p;
}

test.serial('convey test passes and fails with one line per field, and checks rejects, exact requests and what the ledger skips', async (t) => {
  const p = await project(t);
  writeFileSync(join(p.dir, 'jobs', 'orders-rows.csv'), 'order_id,closed_at,visitor,kind,total_cents,bucketing\nA1,2026-03-01T12:00:00Z,oeu1,refund,500,"{""987654321"": ""1111111""}"\nA2,2026-03-01T12:00:01Z,oeu2,sale,250,"{""987654321"": ""1111111""}"\n');
  writeTests(p, 'orders', {
    $schema: '../schema/tests.schema.json',
    tables: TABLES,
    tests: [
      {
        name: 'a refund is negative revenue',
        rows: { phone_orders: 'orders-rows.csv' },
        ledger: { sent: ['A2'] },
        expect: {
          conversions: [{ conversion_id: 'A1', revenue_cents: -500, occurred_at: '2026-03-01T12:00:00.000000Z', experiments: { '987654321': '1111111' } }],
          requests: [{ method: 'GET', url: 'http://127.0.0.1:9/event?a=1234567&n=purchase&u=oeu1&x987654321=1111111&v=-500&g=111&time=1772366400&src=convey-test' }],
          alreadySent: ['A2'],
        },
      },
      {
        name: 'bad rows are rejected by reason',
        rows: { phone_orders: [{ order_id: 'B1', closed_at: '2026-03-01T12:00:00Z', visitor: 'oeu3', kind: 'sale', total_cents: 100 }, { order_id: 'B2', closed_at: '2026-03-01T12:00:00Z', kind: 'sale' }] },
        expect: { rejects: [{ conversion_id: 'B1', reason: 'missing_experiments' }, { conversion_id: 'B2', reason: 'missing_visitor_id' }] },
      },
    ],
  });
  const passed = await p.cli(['test', 'orders']);
  t.is(passed.code, 0, passed.stdout + passed.stderr);
  t.regex(passed.stdout, /✓ a refund is negative revenue\n {2}✓ bad rows are rejected by reason\n2 test\(s\): 2 passed, 0 failed/);

  // The mapping forgets the sign of refunds: the failure names the conversion, the field and both values.
  p.writeJob('orders', PHONE_ORDERS_SQL.replace("case when kind = 'refund' then -total_cents else total_cents end", 'total_cents'), CLASSIC_FOR_TESTS);
  const failed = await p.cli(['test', 'orders']);
  t.is(failed.code, 1);
  t.regex(failed.stdout, /✗ a refund is negative revenue\n {6}A1\.revenue_cents: expected -500, got 500\n {6}requests\[0\]\.url: expected "[^"]*v=-500[^"]*", got "[^"]*v=500[^"]*"\n/);
  t.regex(failed.stdout, /1 passed, 1 failed/);
  const json = (await p.cli(['test', 'orders', '--json'])).json<{ failed: number; outcomes: Array<{ name: string; failures: string[] }> }>();
  t.is(json.failed, 1);
});

test.serial('--record writes what the mapping does as the expectations, and the tests then pass', async (t) => {
  const p = await project(t);
  writeTests(p, 'orders', {
    tables: TABLES,
    tests: [{ name: 'two orders', rows: { phone_orders: [{ order_id: 'R1', closed_at: '2026-03-01T00:00:00Z', visitor: 'oeu9', kind: 'sale', total_cents: 1234, bucketing: { '1': '2' } }, { order_id: 'R2', closed_at: '2026-03-01T00:00:00Z', visitor: null, kind: 'sale' }] } }],
  });
  const recordRun = await p.cli(['test', 'orders', '--record']);
  t.is(recordRun.code, 0, recordRun.stdout + recordRun.stderr);
  const expect = readTests(p, 'orders').tests[0]!.expect!;
  t.like(expect.conversions![0], { conversion_id: 'R1', revenue_cents: 1234, visitor_id: 'oeu9', experiments: { '1': '2' } });
  t.deepEqual(expect.rejects, [{ conversion_id: 'R2', reason: 'missing_visitor_id' }]);
  t.regex(expect.requests![0]!.url!, /^http:\/\/127\.0\.0\.1:9\/event\?a=1234567&n=purchase&u=oeu9&x1=2&v=1234&g=111&time=1772323200&src=convey-test$/);
  t.is((await p.cli(['test', 'orders'])).code, 0);
});

test.serial('a function the embedded engine lacks is a clear message that points at --on-source', async (t) => {
  const p = await project(t);
  p.writeJob('orders', PHONE_ORDERS_SQL.replace("'purchase' as event_key", 'getdate() as _when, \'purchase\' as event_key'), CLASSIC_FOR_TESTS);
  writeTests(p, 'orders', { tables: TABLES, tests: [{ name: 'any', rows: { phone_orders: [] } }] });
  const run = await p.cli(['test', 'orders']);
  t.is(run.code, 1);
  t.regex(run.stdout, /getdate\(\) does not exist/);
  t.regex(run.stdout, /the embedded engine, PostgreSQL \(embedded PGlite, in memory\), has no getdate\(\): .*convey test --on-source/);
});

test.serial('--sample starts a test from real rows with visitor ids replaced; --on-source runs the fixtures on the source and leaves nothing behind', async (t) => {
  const p = await projectWithRows(t, rows(8));
  await insertRows(p, [{ ...rows(1, '2026-03-02T00:00:00Z', 'bad')[0]!, revenue: '1.5' }]);
  p.writeJob('orders', CONVERSIONS_SQL, { destination: { type: 'optimizely-events', accountId: '1000', endpoint: 'http://127.0.0.1:9/v1/events' } });
  const sampled = await p.cli(['test', 'orders', '--sample', '5', '--table', 'conversions']);
  t.is(sampled.code, 0, sampled.stdout + sampled.stderr);
  const doc = readTests(p, 'orders');
  t.is(doc.tables.conversions!.columns.at, 'timestamp with time zone', 'types from the catalogue');
  const fixture = doc.tests[0]!.rows.conversions as Array<Record<string, unknown>>;
  t.is(fixture.length, 5);
  t.true(fixture.every((r) => /^visitor-\d+$/.test(String(r.visitor))), JSON.stringify(fixture[0]));
  t.is(doc.tests[0]!.expect!.conversions!.length + (doc.tests[0]!.expect!.rejects?.length ?? 0), 5);
  // The Event API body with its deterministic uuids is recorded as it would be sent.
  const body = doc.tests[0]!.expect!.requests![0]!.body as { visitors: Array<{ visitor_id: string; snapshots: Array<{ events: Array<{ uuid: string }> }> }> };
  t.regex(body.visitors[0]!.snapshots[0]!.events[0]!.uuid, /^[0-9a-f-]{36}$/);

  const onSource = await p.cli(['test', 'orders', '--on-source']);
  t.is(onSource.code, 0, onSource.stdout + onSource.stderr);
  t.regex(onSource.stdout, /on source "warehouse" \(temporary tables, rolled back\)/);
  // The temporary fixture table shadowed the real one inside the transaction only.
  t.is((await p.db.sourceSql('select count(*)::int as n from conversions')).rows[0].n, 9);
});
