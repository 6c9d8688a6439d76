import test from 'ava';
import pg from 'pg';
import { CONVERSIONS_SQL, classicJob, eventsJob, rows, withReceiver, type SummaryJson, projectWithRows } from './helpers/fixtures.ts';
import { usingPostgres } from './helpers/databases.ts';
import { waitFor } from './helpers/project.ts';
import { PGBOUNCER, startPgBouncer } from './helpers/pgbouncer.ts';

test('a second run of a job while the first is sending sends nothing, exits 75 and names the run holding the job', async (t) => {
  const project = await projectWithRows(t, rows(400));

  await withReceiver({ protocol: 'events', faults: { delayMs: 30 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 10, rateLimit: { concurrency: 2, perSecond: 20 } }));
    const first = project.spawn(['run', 'orders', '--json']);
    await waitFor(() => (receiver.stats().acceptedRequests >= 2 ? true : undefined), 'the first run to start sending');

    const second = await project.cli(['run', 'orders', '--json']);
    t.is(second.code, 75, second.stderr);
    t.is(second.stdout, '', 'no summary: nothing ran');
    t.regex(second.stderr, new RegExp(`pid ${first.child.pid}`), 'the message names the process holding the job');
    t.regex(second.stderr, /run 1\b/, 'and its run');

    t.is(await first.exited, 0, first.stderr());
    const summary = JSON.parse(first.stdout()) as SummaryJson;
    t.is(summary.sent, 400);
    // Every request the endpoint got was the first run's, and every batch in the ledger is its.
    t.is(receiver.stats().requests, summary.requests, 'the second run sent nothing');
    const { rows: runs } = await project.db.stateSql('select distinct run_id::int as run from convey.batches');
    t.deepEqual(runs, [{ run: summary.runId }]);
    t.is(receiver.stats().unique, 400);
    t.is(receiver.stats().duplicates, 0);
  });
});

// Only PostgreSQL has a separate connection holding the locks (and other processes that could
// take the job); an embedded store serves one process through one connection.
if (usingPostgres) {
  test('a run that loses the connection holding its job lock stops reading and fails with exit 4; the next run completes', async (t) => {
    const project = await projectWithRows(t, rows(600));
    await withReceiver({ protocol: 'events', faults: { delayMs: 20 } }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 10, rateLimit: { concurrency: 2, perSecond: 40 } }));
      const running = project.cli(['run', 'orders', '--json']);
      await waitFor(() => (receiver.stats().acceptedRequests >= 3 ? true : undefined), 'the run to start sending');
      await project.db.stateSql(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'convey-lock' and datname = current_database()`);
      const lost = await running;
      t.is(lost.code, 4, lost.stderr);
      t.regex(lost.stderr, /lost the state store connection holding job \\"orders\\"/);
      t.true(receiver.stats().unique < 600, 'it stopped reading');

      const next = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
      t.is(next.status, 'succeeded');
      t.is(receiver.stats().unique, 600);
    });
  });

  test('a run that loses its job lock stops sending at once: a worker taking the job meanwhile sends nothing twice beyond the requests in flight', async (t) => {
    const project = await projectWithRows(t, rows(400));
    // Classic: the endpoint keeps every copy, so a conversion sent by both workers shows up twice.
    await withReceiver({ protocol: 'classic', faults: { delayMs: 20 } }, async (receiver) => {
      // Two batches of 100 claimed at once and sent 2 at a time at 100/s: when the lock goes,
      // most of them are still waiting for their turn to leave, not on the wire.
      const concurrency = 2;
      project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver, { batchSize: 100, rateLimit: { concurrency, perSecond: 100 } }));
      const first = project.cli(['run', 'orders', '--json']);
      await waitFor(() => (receiver.stats().acceptedRequests >= 10 ? true : undefined), 'the first worker to start sending');
      await project.db.stateSql(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'convey-lock' and datname = current_database()`);
      // Arrived but not yet recorded as sent when the lock went: in doubt, so the next worker may
      // send them again, as after a kill -9. Anything beyond that (and the requests on the wire)
      // is a conversion the first worker sent after it had lost the job.
      const arrivedAtLoss = receiver.stats().conversions;
      const { rows: recorded } = await project.db.stateSql(
        `select count(*)::int as n from convey.ledger l join convey.batches b on b.id = l.batch_id where b.status = 'done' and l.outcome is null`,
      );
      const inDoubtAtLoss = arrivedAtLoss - (recorded[0] as { n: number }).n;
      await waitFor(async () => {
        const { rows: left } = await project.db.stateSql(`select 1 from pg_stat_activity where application_name = 'convey-lock' and datname = current_database()`);
        return left.length === 0 ? true : undefined;
      }, 'the lock connection to end');

      // Another worker takes the job while the first still holds its claimed batches: to it they
      // are in doubt, and it resends them.
      const second = await project.cli(['run', 'orders', '--json']);
      t.is(second.code, 0, second.stderr);
      const lost = await first;
      t.is(lost.code, 4, lost.stderr);

      const stats = receiver.stats();
      t.is(stats.unique, 400, 'every conversion arrived');
      t.true(
        stats.duplicates <= inDoubtAtLoss + concurrency,
        `only conversions in doubt when the lock went (${inDoubtAtLoss}, plus ${concurrency} on the wire) may arrive twice; got ${stats.duplicates} duplicates`,
      );
    });
  });

  test('a state connection dropped inside a transaction ends the run with exit 4 (STATE_ERROR), not an uncaught error; the next run completes', async (t) => {
    const project = await projectWithRows(t, rows(200));
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 20 }));
      t.is((await project.cli(['migrate'])).code, 0);
      // Hold the batches table so the run's first write to it waits inside its transaction, on a
      // connection checked out of the pool: that is where the drop lands, every time.
      const blocker = new pg.Client({ connectionString: project.db.stateUrl });
      await blocker.connect();
      t.teardown(() => blocker.end().catch(() => undefined));
      await blocker.query('begin; lock table convey.batches in exclusive mode');

      const run = project.spawn(['run', 'orders', '--json']);
      const pid = await waitFor(async () => {
        const { rows: waiting } = await project.db.stateSql(
          `select pid from pg_stat_activity where application_name = 'convey' and datname = current_database() and wait_event_type = 'Lock'`,
        );
        return (waiting[0] as { pid: number } | undefined)?.pid;
      }, 'the run to wait on the batches table inside a transaction');
      await project.db.stateSql('select pg_terminate_backend($1)', [pid]);
      await blocker.query('rollback');

      t.is(await run.exited, 4, run.stderr());
      t.regex(run.stderr(), /"code":"STATE_ERROR"/);
      t.notRegex(run.stderr(), /Emitted 'error' event/);
      t.is(receiver.stats().unique, 0, 'nothing was claimed, so nothing was sent');

      const next = await project.cli(['run', 'orders', '--json']);
      t.is(next.code, 0, next.stderr);
      t.is(receiver.stats().unique, 200);
      t.is(receiver.stats().duplicates, 0);
    });
  });

  test('workers started together on a new state store: one runs the job, the others exit 75, none fails preparing the store', async (t) => {
    const project = await projectWithRows(t, rows(200));
    await withReceiver({ protocol: 'events', faults: { delayMs: 100 } }, async (receiver) => {
      // Slow enough that the job is still held when the last worker gets past preparing the store.
      project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 10, rateLimit: { concurrency: 1 } }));
      const results = await Promise.all(Array.from({ length: 4 }, () => project.cli(['run', 'orders', '--json'])));
      t.deepEqual(results.map((r) => r.code).sort((a, b) => a - b), [0, 75, 75, 75], results.map((r) => r.stderr).join('\n'));
      t.is(receiver.stats().unique, 200);
      t.is(receiver.stats().duplicates, 0);
      const { rows: lockRows } = await project.db.stateSql('select count(*)::int as n from convey.knex_migrations_lock');
      t.is((lockRows[0] as { n: number }).n, 1, 'one migration lock row: two would fail every later start with "Migration table is already locked"');
    });
  });
}

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
