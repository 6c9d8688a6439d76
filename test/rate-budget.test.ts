import test from 'ava';
import { usingPostgres } from './helpers/databases.ts';
import { CONVERSIONS_SQL, classicJob, rows, withReceiver, projectWithRows } from './helpers/fixtures.ts';
import { waitFor, type TestProject } from './helpers/project.ts';
import type { Receiver } from '../src/receiver/server.ts';
import { LeasedBudget, type BudgetSchedule } from '../src/delivery/leased-budget.ts';
import type { RateBudget } from '../src/delivery/rate-budget.ts';
import { PauseGate } from '../src/delivery/pause-gate.ts';
import { TokenBucket } from '../src/delivery/token-bucket.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import { FakeClock } from '../src/time/clock.ts';

/**
 * The pacing contract every RateBudget keeps (this process's token bucket, and the budget leased
 * from a shared schedule), on the fake clock. The shared schedule here is the same GCRA as the SQL
 * in state/sql/rate-budgets.ts, kept in memory: the SQL itself runs at the end of this file,
 * against PostgreSQL, with real processes.
 */

function memorySchedule(clock: FakeClock, perSecond: number): BudgetSchedule & { reservations: number } {
  let tat = -Infinity;
  let pausedUntil = -Infinity;
  const listeners: Array<(ms: number) => void> = [];
  const schedule = {
    reservations: 0,
    async reserve(n: number) {
      schedule.reservations++;
      const now = clock.monotonic();
      const slotMs = 1000 / perSecond;
      const start = Math.max(tat, now, pausedUntil);
      tat = start + n * slotMs;
      return { waitMs: start - now, slotMs };
    },
    async pause(ms: number) {
      pausedUntil = Math.max(pausedUntil, clock.monotonic() + ms);
      for (const listener of listeners) listener(ms);
    },
    async throttled() {},
    onPause(listener: (ms: number) => void) {
      listeners.push(listener);
    },
  };
  return schedule;
}

/** Keeps `depth` callers waiting on `budget` until `until` (fake ms); returns the grant times. */
function demand(clock: FakeClock, budget: RateBudget, depth: number, until: number): number[] {
  const grants: number[] = [];
  const caller = async (): Promise<void> => {
    while (clock.monotonic() < until) {
      await budget.take();
      if (clock.monotonic() < until) grants.push(clock.monotonic());
    }
  };
  for (let i = 0; i < depth; i++) void caller();
  return grants;
}

function busiestWindow(times: number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

async function run(clock: FakeClock, ms: number, step = 1): Promise<void> {
  for (let t = 0; t < ms; t += step) await clock.advance(step);
}

const implementations: Array<[string, (clock: FakeClock, rate: number) => RateBudget]> = [
  ['token bucket', (clock, rate) => new TokenBucket(clock, rate)],
  ['leased budget', (clock, rate) => new LeasedBudget({ clock, schedule: memorySchedule(clock, rate), logger: silentLogger, perSecond: rate })],
];

for (const [name, make] of implementations) {
  test(`${name}: under full demand, every second grants the rate (the first at most one more), no second above it`, async (t) => {
    const clock = new FakeClock();
    const budget = make(clock, 100);
    const grants = demand(clock, budget, 8, 3000);
    await run(clock, 3100);
    t.true(grants.length >= 295 && grants.length <= 301, `${grants.length} grants in 3 s at 100/s`);
    t.true(busiestWindow(grants) <= 101, `busiest second ${busiestWindow(grants)}`);
  });

  test(`${name}: a waiter that gives up is rejected with the reason; the others still get tokens`, async (t) => {
    const clock = new FakeClock();
    const budget = make(clock, 10);
    const stop = new AbortController();
    t.true(budget.tryTake() || (await budget.take().then(() => true)));
    const waiting = budget.take(stop.signal);
    const next = budget.take();
    stop.abort(new Error('stopped'));
    await t.throwsAsync(waiting, { message: 'stopped' });
    await run(clock, 300);
    await t.notThrowsAsync(next);
  });
}

test('leased budget: two runners on one schedule share the rate between them, not each', async (t) => {
  const clock = new FakeClock();
  const schedule = memorySchedule(clock, 100);
  const a = new LeasedBudget({ clock, schedule, logger: silentLogger, perSecond: 100 });
  const b = new LeasedBudget({ clock, schedule, logger: silentLogger, perSecond: 100 });
  const grants = [...[demand(clock, a, 8, 2000), demand(clock, b, 8, 2000)]];
  await run(clock, 2100);
  const all = grants.flat();
  t.true(all.length >= 195 && all.length <= 201, `${all.length} grants in 2 s for both`);
  t.true(grants.every((g) => g.length > 50), `both were served: ${grants.map((g) => g.length).join(', ')}`);
  t.true(busiestWindow(all) <= 101);
  t.true(schedule.reservations < all.length / 3, `${schedule.reservations} reservations for ${all.length} grants: leases, not one row update per request`);
});

test('leased budget: a runner that falls behind drops the slots it missed instead of sending them late, bunched with the others', async (t) => {
  const clock = new FakeClock();
  // Its timers fire only on 25 ms ticks (a loaded machine): up to 25 ms late, far more than FORGIVE_MS.
  const late: FakeClock = Object.assign(Object.create(clock) as FakeClock, {
    sleep: (ms: number, signal?: AbortSignal) => clock.sleep(Math.ceil((clock.monotonic() + ms) / 25) * 25 - clock.monotonic(), signal),
  });
  const schedule = memorySchedule(clock, 200);
  const lagging = new LeasedBudget({ clock: late, schedule, logger: silentLogger, perSecond: 200 });
  const onTime = new LeasedBudget({ clock, schedule, logger: silentLogger, perSecond: 200 });
  const grants = [demand(late, lagging, 8, 3000), demand(clock, onTime, 8, 3000)];
  await run(clock, 3100);
  const all = grants.flat();
  t.true(busiestWindow(all) <= 201, `busiest second of both: ${busiestWindow(all)}`);
  t.true(grants[0]!.length < grants[1]!.length, `the late runner lost its missed slots: ${grants[0]!.length} grants against ${grants[1]!.length}`);
});

test('leased budget: a pause asked by one runner holds every runner, requests already waiting included, and the schedule resumes after it', async (t) => {
  const clock = new FakeClock();
  const schedule = memorySchedule(clock, 100);
  const gates = [new PauseGate(clock), new PauseGate(clock)];
  const [a, b] = gates.map((gate) => new LeasedBudget({ clock, schedule, logger: silentLogger, perSecond: 100, gate }));
  const grants = [demand(clock, a!, 4, 3000), demand(clock, b!, 4, 3000)];
  await run(clock, 500);
  // What the engine does on a Retry-After: its own gate first, then the budget tells the others.
  gates[0]!.pauseFor(1000);
  a!.paused(1000);
  const at = clock.monotonic();
  t.true(gates[1]!.remaining() > 990, 'the other runner\'s gate holds it too');
  await run(clock, 2600);
  const during = grants.flat().filter((g) => g > at && g < at + 1000);
  t.deepEqual(during, []);
  t.true(grants.flat().some((g) => g >= at + 1000), 'sending resumed');
});

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
      }, 'the runners to be sending');
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
