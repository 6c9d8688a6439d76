import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import pg from 'pg';
import { usingPostgres } from './helpers/databases.ts';
import { CONVERSIONS_SQL, eventsJob, rows, withReceiver, projectWithRows } from './helpers/fixtures.ts';
import type { JobOutcome } from '../src/cli/run-many.ts';

interface Combined {
  exitCode: number;
  jobs: JobOutcome[];
}

test('run --all: a broken mapping and an unreachable source fail on their own lines, the healthy jobs run, the exit code is the worst', async (t) => {
  const project = await projectWithRows(t, rows(30));
  // A second source nothing listens on (loopback port 1): its job fails with exit 3 on its own.
  writeFileSync(
    join(project.dir, 'config', 'default.json'),
    JSON.stringify({ sources: { warehouse: project.db.sourceConfig, nowhere: { client: 'pg', connection: 'postgres://postgres@127.0.0.1:1/none' } } }),
  );
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { tags: ['nightly'] }));
    project.writeJob('refunds', CONVERSIONS_SQL.replace('revenue as revenue_cents', '-revenue as revenue_cents'), eventsJob(receiver, { tags: ['nightly'], destination: { type: 'optimizely-events', accountId: '2000', endpoint: receiver.url } }));
    project.writeJob('broken', CONVERSIONS_SQL.replace('event_id,', ''), eventsJob(receiver, { tags: ['nightly'] }));
    project.writeJob('elsewhere', CONVERSIONS_SQL, { ...eventsJob(receiver), source: 'nowhere' });

    const run = await project.cli(['run', '--all', '--parallel', '2', '--json']);
    const combined = run.json<Combined>();
    t.is(run.code, 3, run.stderr);
    t.is(combined.exitCode, 3);
    const by = Object.fromEntries(combined.jobs.map((j) => [j.job, j]));
    t.deepEqual(Object.keys(by), ['broken', 'elsewhere', 'orders', 'refunds']);
    t.like(by.broken, { status: 'error', exitCode: 2, error: { code: 'MAPPING_INVALID' } });
    t.like(by.elsewhere, { status: 'error', exitCode: 3, error: { code: 'SOURCE_ERROR' } });
    t.like(by.orders, { status: 'succeeded', exitCode: 0, summary: { sent: 30 } });
    t.like(by.refunds, { status: 'succeeded', exitCode: 0, summary: { sent: 30 } });
    t.is(receiver.stats().unique, 60, 'both healthy jobs sent everything');

    // The same selection by tag, without the broken one: nothing new, exit 0.
    const tagged = await project.cli(['run', '--select', 'tag:nightly', '--exclude', 'broken', '--json']);
    t.is(tagged.code, 0, tagged.stderr);
    t.deepEqual(tagged.json<Combined>().jobs.map((j) => [j.job, j.status, j.summary?.sent]), [['orders', 'succeeded', 0], ['refunds', 'succeeded', 0]]);

    // A glob that matches nothing is a mistake, not a quiet night.
    const typo = await project.cli(['run', 'order-*']);
    t.is(typo.code, 2);
    t.regex(typo.stderr, /matches no job/);

    // plan and status take the same selection.
    const plans = await project.cli(['plan', 'orders', 'refunds', '--from', '2026-03-01', '--to', '2026-03-02', '--json']);
    t.is(plans.code, 0, plans.stderr);
    t.deepEqual(plans.json<{ jobs: Array<{ job: string; plan: { alreadySent: number } }> }>().jobs.map((j) => [j.job, j.plan.alreadySent]), [['orders', 30], ['refunds', 30]]);
    const status = await project.cli(['status', '--select', 'tag:nightly', '--exclude', 'broken', '--json']);
    t.deepEqual(status.json<{ jobs: Array<{ job: string }> }>().jobs.map((j) => j.job), ['orders', 'refunds']);
  });
});

if (usingPostgres) {
  test('run --all with a job another runner holds: that job is skipped and reported, not exit 75; the others run', async (t) => {
    const project = await projectWithRows(t, rows(20));
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      project.writeJob('held', CONVERSIONS_SQL, eventsJob(receiver));
      project.writeJob('healthy', CONVERSIONS_SQL, eventsJob(receiver, { destination: { type: 'optimizely-events', accountId: '3000', endpoint: receiver.url } }));
      project.writeJob('broken', CONVERSIONS_SQL.replace('visitor as visitor_id,', ''), eventsJob(receiver));
      t.is((await project.cli(['migrate'])).code, 0);
      // Another runner: a session holding the job's lock, as a run of it does.
      const other = new pg.Client({ connectionString: project.db.stateUrl });
      await other.connect();
      t.teardown(() => other.end());
      await other.query(`select pg_advisory_lock(x'636f6e76'::int, hashtext('held'))`);

      const run = await project.cli(['run', '--all', '--json']);
      t.is(run.code, 2, run.stderr);
      const by = Object.fromEntries(run.json<Combined>().jobs.map((j) => [j.job, j]));
      t.like(by.held, { status: 'held', exitCode: 0, error: { code: 'JOB_LOCKED' } });
      t.like(by.healthy, { status: 'succeeded', summary: { sent: 20 } });
      t.like(by.broken, { status: 'error', exitCode: 2 });
      t.is(receiver.stats().unique, 20, 'the held job sent nothing');

      // Alone, a held job is still exit 75, as before.
      t.is((await project.cli(['run', 'held'])).code, 75);
      const text = await project.cli(['run', 'held', 'healthy']);
      t.is(text.code, 0, text.stderr);
      t.regex(text.stdout, /held +held +skipped: job "held" is held by another run/);
    });
  });
}
