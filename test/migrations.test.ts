import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { usingPostgres } from './helpers/databases.ts';
import { CONVERSIONS_SQL, eventsJob } from './helpers/fixtures.ts';
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

// Needs a PostgreSQL server that answers: only there can a database be missing while the server
// is up, or a user lack the right to create the schema.
if (usingPostgres) {
  test('a state database that does not exist: exit 4 from every command, naming the database and how to create it; a user who may not create the schema: exit 4 from migrate too', async (t) => {
    const project = await createTestProject();
    t.teardown(() => project.close());
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob({ url: 'http://127.0.0.1:1/v1/events' }));
    const url = new URL(project.env.CONVEY_STATE_URL!);
    const missing = `convey_missing_${randomBytes(4).toString('hex')}`;
    url.pathname = `/${missing}`;
    const create = new RegExp(`Create it \\(createdb -h ${url.hostname}${url.port ? ` -p ${url.port}` : ''}${url.username ? ` -U ${url.username}` : ''} ${missing}, or CREATE DATABASE \\\\"${missing}\\\\"\\)`);
    for (const args of [['migrate'], ['migrate', '--down', '--yes'], ['run', 'orders'], ['retry', 'orders'], ['status'], ['state', 'show', 'orders']]) {
      const result = await project.cli(args, { env: { CONVEY_STATE_URL: url.toString() } });
      t.is(result.code, 4, `convey ${args.join(' ')}: ${result.stderr}`);
      t.regex(result.stderr, new RegExp(`the state database \\\\"${missing}\\\\" does not exist`), `convey ${args.join(' ')}`);
      t.regex(result.stderr, create, `convey ${args.join(' ')}`);
    }

    // The server and the database are there, but this user may not create the schema "convey".
    const role = `convey_no_create_${randomBytes(4).toString('hex')}`;
    await project.db.stateSql(`create role ${role} login`);
    t.teardown(async () => {
      await project.db.stateSql(`drop role if exists ${role}`);
    });
    const denied = new URL(project.env.CONVEY_STATE_URL!);
    denied.username = role;
    denied.password = '';
    const migrate = await project.cli(['migrate'], { env: { CONVEY_STATE_URL: denied.toString() } });
    t.is(migrate.code, 4, migrate.stderr);
    t.regex(migrate.stderr, /cannot prepare the state store \(PostgreSQL [^)]+\): .*permission denied.*STATE_ERROR.*may create the schema/);
  });
}
