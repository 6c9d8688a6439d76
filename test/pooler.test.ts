import test from 'ava';
import { usingPostgres } from './helpers/databases.ts';
import { CONVERSIONS_SQL, eventsJob, rows, withReceiver, projectWithRows } from './helpers/fixtures.ts';
import { PGBOUNCER, startPgBouncer } from './helpers/pgbouncer.ts';

// A real PgBouncer in front of the test's PostgreSQL: in transaction mode a session lock taken
// by one client is not held against the others, so convey must refuse it before anything is sent.
if (usingPostgres && PGBOUNCER) {
  test('a state store behind PgBouncer in transaction mode is refused with exit 4 before anything is sent; session mode works', async (t) => {
    const project = await projectWithRows(t, rows(20));
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
      t.is((await project.cli(['migrate'])).code, 0);
      const transaction = await startPgBouncer(project.db.stateUrl!, 'transaction');
      t.teardown(() => transaction.stop());
      const refused = await project.cli(['run', 'orders', '--json'], { env: { CONVEY_STATE_URL: transaction.url } });
      t.is(refused.code, 4, refused.stderr);
      t.regex(refused.stderr, /pooler in transaction mode/);
      t.regex(refused.stderr, /pool_mode = session/);
      t.is(receiver.stats().requests, 0, 'nothing was sent');

      const session = await startPgBouncer(project.db.stateUrl!, 'session');
      t.teardown(() => session.stop());
      const run = await project.cli(['run', 'orders', '--json'], { env: { CONVEY_STATE_URL: session.url } });
      t.is(run.code, 0, run.stderr);
      t.is(receiver.stats().unique, 20);
    });
  });
}
