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

test('a 404 (a wrong endpoint) on a batch is not split: one request, every conversion rejected with the answer', async (t) => {
  // Halving only helps when some conversions are at fault (400, 413). A wrong path, a missing
  // permission or a wrong method answers every half the same: splitting a batch of 64 would
  // cost 127 requests to learn nothing more.
  const project = await projectWithRows(t, rows(64));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 64, destination: { type: 'optimizely-events', accountId: '1000', endpoint: `${receiver.origin}/v1/event` } }));
    const summary = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(summary, { read: 64, sent: 0, rejected: 64 });
    t.is(summary.requests, 1);
    t.is(receiver.stats().requests, 1);
    const { rows: rejects } = await project.db.stateSql(`select distinct reason from convey.rejects`);
    t.is(rejects.length, 1);
    t.regex(rejects[0].reason, /HTTP 404 .*not found/);
  });
});
