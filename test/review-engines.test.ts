import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { CLASSIC_FOR_TESTS, PHONE_ORDERS_SQL } from './helpers/fixtures.ts';
import { createTestProject, type TestProject } from './helpers/project.ts';
import { contractEngines } from './helpers/source-engines.ts';

/**
 * `convey test` and `convey new --from` on the engines besides PostgreSQL: a DuckDB job's mapping
 * tests run on an in-memory DuckDB; a MySQL/MariaDB job's, which has no embedded engine, on the
 * source in temporary tables. (PostgreSQL and PGlite: mapping-tests.test.ts, scaffold.test.ts.)
 */

function tests(types: Record<string, string>): Record<string, unknown> {
  return {
    tables: { phone_orders: { columns: types } },
    tests: [
      {
        name: 'a refund is negative revenue, experiments keep their order',
        rows: {
          phone_orders: [
            // As text: a JSON object in the tests file would come back with its integer-like keys sorted.
            { order_id: 'A1', closed_at: '2026-03-01T12:00:00.000001Z', visitor: 'oeu1', kind: 'refund', total_cents: 500, bucketing: '{"987654321": "1111111", "876543210": "2222222"}' },
            { order_id: 'A2', closed_at: '2026-03-01T12:00:01Z', kind: 'sale', total_cents: 100 },
          ],
        },
        expect: {
          conversions: [{ conversion_id: 'A1', revenue_cents: -500, occurred_at: '2026-03-01T12:00:00.000001Z' }],
          rejects: [{ conversion_id: 'A2', reason: 'missing_visitor_id' }],
          requests: [{ method: 'GET', url: 'http://127.0.0.1:9/event?a=1234567&n=purchase&u=oeu1&x987654321=1111111&x876543210=2222222&v=-500&g=111&time=1772366400&src=convey-test' }],
        },
      },
    ],
  };
}

async function projectOn(t: { teardown(fn: () => Promise<void>): void }, source: Record<string, unknown>): Promise<TestProject> {
  const p = await createTestProject();
  t.teardown(() => p.close());
  writeFileSync(join(p.dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse: source } }));
  p.writeJob('orders', PHONE_ORDERS_SQL, CLASSIC_FOR_TESTS);
  return p;
}

test('duckdb: mapping tests run on an in-memory DuckDB, pass, and fail with one line per field', async (t) => {
  const p = await projectOn(t, { client: 'duckdb' });
  writeFileSync(join(p.dir, 'jobs', 'orders.tests.json'), JSON.stringify(tests({ order_id: 'VARCHAR', closed_at: 'TIMESTAMPTZ', visitor: 'VARCHAR', kind: 'VARCHAR', total_cents: 'INTEGER', bucketing: 'JSON' })));
  const passed = await p.cli(['test', 'orders']);
  t.is(passed.code, 0, passed.stdout + passed.stderr);
  t.regex(passed.stdout, /1 test\(s\) on DuckDB \(in memory\)/);
  p.writeJob('orders', PHONE_ORDERS_SQL.replace("case when kind = 'refund' then -total_cents else total_cents end", 'total_cents'), CLASSIC_FOR_TESTS);
  const failed = await p.cli(['test', 'orders']);
  t.is(failed.code, 1);
  t.regex(failed.stdout, /A1\.revenue_cents: expected -500, got 500/);
});

const mariadb = contractEngines().find((e) => e.name === 'mariadb');
if (mariadb) {
  test('mariadb: with no embedded engine the tests run on the source in temporary tables, gone afterwards; plan runs them too; new --from reads the catalogue', async (t) => {
    const p = await createTestProject();
    t.teardown(() => p.close());
    const db = await mariadb.create(p.dir);
    t.teardown(() => db.close());
    // A real table of the same name, which the temporary fixture table shadows for the test only.
    await db.sql('create table phone_orders (order_id varchar(20) primary key, closed_at datetime(6), visitor varchar(64), kind varchar(10), total_cents int, bucketing json, key by_closed (closed_at))');
    await db.insert('phone_orders', [{ order_id: 'REAL', closed_at: '2026-03-01T00:00:00Z', visitor: 'x', kind: 'sale', total_cents: 1, bucketing: '{}' }]);
    writeFileSync(join(p.dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse: db.config } }));
    p.writeJob('orders', PHONE_ORDERS_SQL, CLASSIC_FOR_TESTS);
    writeFileSync(join(p.dir, 'jobs', 'orders.tests.json'), JSON.stringify(tests({ order_id: 'varchar(20)', closed_at: 'datetime(6)', visitor: 'varchar(64)', kind: 'varchar(10)', total_cents: 'int', bucketing: 'json' })));

    const onSource = await p.cli(['test', 'orders']);
    t.is(onSource.code, 0, onSource.stdout + onSource.stderr);
    t.regex(onSource.stdout, /on source "warehouse" \(temporary tables, dropped; MySQL\/MariaDB has no embedded engine\)/);
    const after = await p.cli(['plan', 'orders', '--from', '2026-02-01', '--to', '2026-04-01', '--json']);
    t.is(after.code, 0, after.stderr);
    t.like(after.json(), { read: 1, tests: { passed: 1, failed: 0 } }, 'the real table is untouched, and no temporary table is left in the way');

    const created = await p.cli(['new', 'phone', '--from', 'phone_orders', '--account-id', '1000']);
    t.is(created.code, 0, created.stdout + created.stderr);
    t.regex(created.stdout, /wrote jobs\/phone\.sql/);
    const sql = readFileSync(join(p.dir, 'jobs', 'phone.sql'), 'utf8');
    t.regex(sql, /order_id\s+as conversion_id/);
    t.regex(sql, /closed_at\s+as occurred_at/);
    t.notRegex(created.stdout, /starts no index/, 'closed_at leads an index');
  });
}
