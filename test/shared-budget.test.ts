import test from 'ava';
import { usingPostgres } from './helpers/databases.ts';
import { CONVERSIONS_SQL, classicJob, rows, withReceiver, projectWithRows } from './helpers/fixtures.ts';
import { waitFor, type TestProject } from './helpers/project.ts';
import { createLogger } from '../src/log.ts';
import type { Receiver } from '../src/receiver/server.ts';

/**
 * `rateLimit.perSecond` is the destination's budget, shared by every runner through the
 * PostgreSQL state store. Four runners share one classic backfill (one request per conversion);
 * each alone would send at the full limit. Counted where a rate limiter would count them: at the
 * receiver, as requests arrive.
 */

const LIMIT = 200;
const RUNNERS = 4;

/** 1,600 conversions (8 s at the limit) over 16 days: a chunk per day. */
const conversions = (): ReturnType<typeof rows> => rows(1600, '2026-03-01T00:00:00Z').map((r, i) => ({ ...r, at: new Date(Date.parse('2026-03-01T00:00:00Z') + i * 864_000).toISOString() }));
const BACKFILL = ['backfill', 'orders', '--from', '2026-03-01', '--to', '2026-03-17', '--json'];

function runners(project: TestProject): Array<ReturnType<TestProject['spawn']>> {
  return Array.from({ length: RUNNERS }, (_, i) => project.spawn(BACKFILL, { env: { CONVEY_HOSTNAME: `runner-${i + 1}` } }));
}

function settings(receiver: Receiver): Record<string, unknown> {
  return classicJob(receiver, { batchSize: 25, rateLimit: { concurrency: 8, perSecond: LIMIT } });
}

if (usingPostgres) {
  test.serial(`4 runners with a destination limit of ${LIMIT}/s: no sliding second above ${LIMIT} × 1.02 at the receiver, across all of them`, async (t) => {
    const project = await projectWithRows(t, conversions());
    await withReceiver({ protocol: 'classic' }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, settings(receiver));
      t.is((await project.cli(['migrate'])).code, 0);
      const started = runners(project);
      const codes = await Promise.all(started.map((r) => r.exited));
      t.deepEqual(codes, [0, 0, 0, 0], started.map((r) => r.stderr()).join('\n'));
      const stats = receiver.stats();
      t.is(stats.unique, 1600);
      t.is(stats.duplicates, 0);
      const sent = started.map((r) => (JSON.parse(r.stdout()) as { sent: number }).sent);
      t.true(sent.filter((n) => n > 0).length >= 2, `the runners shared the work: ${sent.join(', ')}`);
      t.true(stats.maxRequestsPerSecond <= LIMIT * 1.02, `busiest second at the receiver: ${stats.maxRequestsPerSecond} requests (limit ${LIMIT})`);
      const achieved = (stats.requests - 1) / ((stats.lastAt! - stats.firstAt!) / 1000);
      t.log(`busiest second ${stats.maxRequestsPerSecond}, paced rate ${achieved.toFixed(1)}/s, sent per runner ${sent.join(', ')}`);
    });
  });

  test.serial('a 429 with Retry-After: 2 seen by one runner pauses all of them', async (t) => {
    const project = await projectWithRows(t, conversions());
    let throttledAt: number | undefined;
    const logger = createLogger({
      level: 'debug',
      write: (line) => {
        if (line.includes('answered with an injected fault')) throttledAt ??= Date.now();
      },
    });
    await withReceiver({ protocol: 'classic', logger }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, settings(receiver));
      t.is((await project.cli(['migrate'])).code, 0);
      const started = runners(project);
      // Once every runner is sending: one 429, to whichever request comes next.
      await waitFor(async () => {
        const { rows: live } = await project.db.stateSql(`select count(distinct b.run_id)::int as n from convey.batches b`);
        return receiver.stats().acceptedRequests >= 200 && (live[0] as { n: number }).n >= 2 ? true : undefined;
      }, 'the runners to be sending', 60_000);
      receiver.setFaults({ script: [{ status: 429, retryAfter: '2' }] });
      const codes = await Promise.all(started.map((r) => r.exited));
      t.deepEqual(codes, [0, 0, 0, 0], started.map((r) => r.stderr()).join('\n'));
      t.truthy(throttledAt, 'the 429 was answered');
      t.is(receiver.stats().unique, 1600);

      // Requests already on their way may land just after the 429; none may start during the pause.
      const arrivals = receiver.accepted().map((a) => a.receivedAt - throttledAt!);
      const during = arrivals.filter((ms) => ms > 300 && ms < 1700);
      t.deepEqual(during, [], `arrivals during the pause, ms after the 429: ${during.slice(0, 20).join(', ')}`);
      t.true(arrivals.some((ms) => ms >= 2000), 'sending went on after the pause');
      const sent = started.map((r) => JSON.parse(r.stdout()) as { sent: number; delivery: { status429: number } });
      t.is(sent.reduce((a, s) => a + s.delivery.status429, 0), 1);
      t.true(sent.filter((s) => s.sent > 0).length >= 2, 'more than one runner was sending when the pause came');
    });
  });
}
