import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { createTestProject } from './helpers/project.ts';

const TABLES = `select string_agg(table_name, ',' order by table_name) as names from information_schema.tables where table_schema = 'convey'`;

test('migrations go up, report up to date, come down (only when confirmed) and go up again', async (t) => {
  const project = await createTestProject();
  t.teardown(() => project.close());

  const up = await project.cli(['migrate']);
  t.is(up.code, 0, up.stderr);
  t.regex(up.stdout, /applied 20261126_001_state, 20261204_002_run_failures, 20261204_003_scale, 20261204_004_monitoring, 20261205_005_backfill_group/);
  t.is((await project.db.stateSql(TABLES)).rows[0].names, 'backfill_chunks,backfill_takes,backfills,batches,conversions,knex_migrations,knex_migrations_lock,ledger,notify_state,rate_budgets,rejects,runs,watermarks');
  t.regex((await project.cli(['migrate'])).stdout, /is up to date/);

  const unconfirmed = await project.cli(['migrate', '--down']);
  t.is(unconfirmed.code, 2);
  t.regex(unconfirmed.stderr, /deletes all convey state/);

  const down = await project.cli(['migrate', '--down', '--yes']);
  t.is(down.code, 0, down.stderr);
  t.is((await project.db.stateSql(TABLES)).rows[0].names, 'knex_migrations,knex_migrations_lock');

  t.regex((await project.cli(['migrate'])).stdout, /applied 20261126_001_state/);
});

test('config: CONVEY_ENV overlays default.json, and only the source a job uses must have its environment', async (t) => {
  const project = await createTestProject();
  t.teardown(() => project.close());
  writeFileSync(
    join(project.dir, 'config', 'default.json'),
    JSON.stringify({ sources: { warehouse: project.db.sourceConfig, other: { client: 'pg', connection: '${OTHER_URL}' } } }),
  );
  writeFileSync(join(project.dir, 'config', 'production.json'), JSON.stringify({ sources: { warehouse: { client: 'pg', connection: '${WAREHOUSE_URL}' } } }));
  project.writeJob('orders', 'select 1 as conversion_id, now() as occurred_at, 1 as visitor_id, 1 as event_id', { destination: { type: 'optimizely-events', accountId: '1' } });

  // OTHER_URL is unset, but the job reads "warehouse": fine.
  t.is((await project.cli(['plan', 'orders', '--json'])).code, 0);

  const production = await project.cli(['plan', 'orders'], { env: { CONVEY_ENV: 'production' } });
  t.is(production.code, 2);
  t.regex(production.stderr, /config\/production\.json: sources\.warehouse\.connection reads \$\{WAREHOUSE_URL\}, which is not set/);

  const missing = await project.cli(['plan', 'orders'], { env: { CONVEY_ENV: 'staging' } });
  t.is(missing.code, 2);
  t.regex(missing.stderr, /CONVEY_ENV=staging but config\/staging\.json does not exist/);
});
