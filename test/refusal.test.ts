import test from 'ava';
import { CONVERSIONS_SQL, classicJob, eventsJob, rows, withReceiver, type SummaryJson, projectWithRows } from './helpers/fixtures.ts';

test('a 400 on a batch of 500 is narrowed down: the one bad conversion becomes a reject, the other 499 arrive', async (t) => {
  const project = await projectWithRows(t, rows(500));

  const refuse = (c: { visitorId: string }): string | undefined => (c.visitorId === 'v250' ? 'visitor v250 is blocked' : undefined);
  await withReceiver({ protocol: 'events', refuse }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 500 }));
    const result = await project.cli(['run', 'orders', '--json']);
    t.is(result.code, 0, result.stderr);
    const summary = result.json<SummaryJson>();
    t.like(summary, { read: 500, sent: 499, rejected: 1, failed: 0 });
    // Halving isolates one conversion among 500 in about 2·log2(500) requests.
    t.true(summary.requests <= 1 + 2 * Math.ceil(Math.log2(500)), `${summary.requests} requests`);
    t.is(receiver.stats().unique, 499);
    t.false(receiver.accepted().some((a) => a.visitorId === 'v250'));

    const { rows: rejects } = await project.db.stateSql(`select conversion_id, reason_code, reason from convey.rejects`);
    t.is(rejects.length, 1);
    t.like(rejects[0], { conversion_id: 'c0250', reason_code: 'refused' });
    t.regex(rejects[0].reason, /HTTP 400 .*visitor v250 is blocked/, 'the server\'s answer is kept');
    const { rows: ledger } = await project.db.stateSql(`select count(*)::int as n from convey.conversions where status = 'sent'`);
    t.is(ledger[0].n, 499, 'the refused conversion is not in the ledger as sent');
  });
});

test('classic: a refused GET becomes a reject; the rest are sent', async (t) => {
  const project = await projectWithRows(t, rows(20));
  const refuse = (c: { visitorId: string }): string | undefined => (c.visitorId === 'v7' ? 'no' : undefined);
  await withReceiver({ protocol: 'classic', refuse }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver));
    const summary = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(summary, { sent: 19, rejected: 1, requests: 20 });
  });
});

test('a 404 (a wrong endpoint) fails the run in one request: nothing is rejected, everything is kept for the next run', async (t) => {
  // Every conversion would get the same answer: halving a batch of 64 cost 127 requests, and
  // rejecting them all ended a night's conversions as rejects behind a successful run.
  const project = await projectWithRows(t, rows(64));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const wrong = { type: 'optimizely-events', accountId: '1000', endpoint: `${receiver.origin}/v1/event` };
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 64, destination: wrong }));
    const failed = await project.cli(['run', 'orders', '--json']);
    t.is(failed.code, 1, 'the on-call engineer sees it');
    t.like(failed.json<SummaryJson>(), { read: 64, sent: 0, rejected: 0, failed: 64, requests: 1 });
    t.is(receiver.stats().requests, 1);
    const { rows: ledger } = await project.db.stateSql(`select distinct status, last_error from convey.conversions`);
    t.is(ledger.length, 1);
    t.is(ledger[0].status, 'failed');
    t.regex(ledger[0].last_error, /HTTP 404: .*not found.*check the destination's endpoint/);

    // Endpoint fixed: the next run sends them from the ledger.
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 64 }));
    const fixed = await project.cli(['run', 'orders', '--json']);
    t.is(fixed.code, 0, fixed.stderr);
    t.like(fixed.json<SummaryJson>(), { retried: 64, sent: 64, failed: 0 });
    t.is(receiver.stats().unique, 64);
  });
});
