import test from 'ava';
import { CONVERSIONS_SQL, classicJob, eventsJob, insertRows, rows, withReceiver, type SummaryJson, projectWithRows } from './helpers/fixtures.ts';
import { waitFor, type TestProject } from './helpers/project.ts';

/**
 * The whole pipeline against the receiver's fault modes (a real server on a local port). In every
 * case each conversion ends delivered or recorded failed, none is in the ledger twice (the ledger's
 * primary key would refuse it), and the measured rate stays within the limit.
 */

async function ledgerStatus(project: TestProject): Promise<Record<string, number>> {
  const { rows: counts } = await project.db.stateSql(`select status, count(*)::int as n from convey.conversions group by status`);
  return Object.fromEntries(counts.map((r: { status: string; n: number }) => [r.status, r.n]));
}

test('30% of answers are 500s: every conversion is delivered after retries, at no more than the rate limit', async (t) => {
  const project = await projectWithRows(t, rows(300));

  await withReceiver({ protocol: 'classic', faults: { failRate: 0.3, seed: 7 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver, { rateLimit: { concurrency: 8, perSecond: 200 }, retry: { maxAttempts: 8, baseDelayMs: 5, maxDelayMs: 50 } }));
    const summary = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson & { delivery: Record<string, number> }>();
    t.like(summary, { status: 'succeeded', sent: 300, failed: 0 });
    t.true(receiver.stats().faults.status500 > 50, `${receiver.stats().faults.status500} answers were 500s`);
    t.is(summary.requests, receiver.stats().requests, 'every attempt is counted');
    t.is(receiver.stats().unique, 300);
    t.is(receiver.stats().duplicates, 0);
    t.true(receiver.stats().maxRequestsPerSecond <= 200 * 1.02, `busiest second: ${receiver.stats().maxRequestsPerSecond} requests`);
    t.deepEqual(await ledgerStatus(project), { sent: 300 });
  });
});

test('429 with Retry-After pauses the destination, lowers the rate, and everything is delivered', async (t) => {
  const project = await projectWithRows(t, rows(60));

  const script = [{ status: 429 as const, retryAfter: '1' }, { status: 429 as const, retryAfter: '1' }];
  await withReceiver({ protocol: 'classic', faults: { script } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver, { rateLimit: { concurrency: 1, perSecond: 100 } }));
    const started = Date.now();
    const summary = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson & { delivery: Record<string, number> }>();
    t.like(summary, { status: 'succeeded', sent: 60, failed: 0 });
    t.is(receiver.stats().faults.scripted, 2);
    t.true(Date.now() - started >= 1900, 'two Retry-After: 1 pauses were honoured');
    // The second request waits out the first pause, so its 429 comes a second later: a signal of
    // its own, not part of the first one's burst.
    t.like(summary.delivery, { status429: 2, rateDecreases: 2, configuredRate: 100 });
    t.true(summary.delivery.minEffectiveRate! < 100, 'the 429s lowered the effective rate');
  });
});

test('dropped connections and stalls past the timeout are retried; what never gets through is recorded failed and retried next run from the ledger', async (t) => {
  const project = await projectWithRows(t, rows(40));

  await withReceiver({ protocol: 'events', faults: { script: [{ status: 'drop' }, { status: 'stall' }], stallMs: 5000 } }, async (receiver) => {
    // undici checks header timeouts on a coarse (about 1 s) tick: 1000 ms is the smallest honest value.
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 40, timeouts: { headersMs: 1000 }, retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 } }));
    const summary = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(summary, { status: 'succeeded', sent: 40, failed: 0, requests: 3 });
    t.like(receiver.stats().faults, { dropped: 1, stalled: 1 });
  });

  // Now an endpoint that only fails: the run goes on, records them failed (exit 1)...
  await withReceiver({ protocol: 'events', faults: { failRate: 1 } }, async (receiver) => {
    await insertRows(project, rows(10, '2026-04-01T00:00:00Z', 'f'));
    project.writeJob('late', CONVERSIONS_SQL.replace('where at >=', "where id like 'f%' and at >="), eventsJob(receiver, { retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }));
    const failed = await project.cli(['run', 'late', '--json']);
    t.is(failed.code, 1);
    t.like(failed.json<SummaryJson>(), { status: 'failed', read: 10, sent: 0, failed: 10 });
    const { rows: errors } = await project.db.stateSql(`select last_error, payload from convey.conversions where status = 'failed'`);
    t.is(errors.length, 10);
    t.regex(errors[0].last_error, /500/);
    t.regex(errors[0].payload, /"visitor_id"/, 'the payload is kept for the retry');

    // ...and the next run sends them first, from the ledger: the source rows are gone by then.
    await project.db.sourceSql(`delete from conversions where id like 'f%'`);
    receiver.setFaults({});
    const retried = await project.cli(['run', 'late', '--json']);
    t.is(retried.code, 0, retried.stderr);
    t.like(retried.json<SummaryJson>(), { read: 0, sent: 10, retried: 10, failed: 0 });
    t.is(receiver.stats().unique, 10);
    t.deepEqual(await ledgerStatus(project), { sent: 50 });
  });
});

test('SIGTERM mid-run: requests in flight finish and are recorded, exit 143; the next run completes with nothing sent twice', async (t) => {
  const project = await projectWithRows(t, rows(1500));

  await withReceiver({ protocol: 'events', faults: { delayMs: 30 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 20, rateLimit: { concurrency: 3, perSecond: 30 } }));
    const child = project.spawn(['run', 'orders', '--json']);
    await waitFor(() => (receiver.stats().acceptedRequests >= 5 ? true : undefined), 'the run to start sending');
    child.child.kill('SIGTERM');
    t.is(await child.exited, 143, child.stderr());
    const stopped = JSON.parse(child.stdout()) as SummaryJson;
    t.is(stopped.status, 'interrupted');
    t.true(stopped.sent > 0 && stopped.sent < 1500);
    t.is(stopped.sent, receiver.stats().unique, 'everything that arrived was recorded as sent');
    t.regex(child.stderr(), /SIGTERM: stopping/);
    t.deepEqual(Object.keys(await ledgerStatus(project)).filter((s) => s === 'pending'), [], 'nothing left in doubt');

    const rerun = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(rerun, { status: 'succeeded', failed: 0, resent: 0 });
    t.is(receiver.stats().unique, 1500);
    t.is(receiver.stats().duplicates, 0, 'a graceful stop leaves nothing to resend');
  });
});
