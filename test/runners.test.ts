import test, { type ExecutionContext } from 'ava';
import { usingPostgres } from './helpers/databases.ts';
import { CONVERSIONS_SQL, insertRows, projectWithRows, withReceiver, type Row } from './helpers/fixtures.ts';
import { waitFor, type SpawnedCli, type TestProject } from './helpers/project.ts';
import { startPartition as startRelay, type Partition as Relay } from './helpers/partition.ts';
import { startReceiver, type Receiver } from '../src/receiver/server.ts';

/**
 * Several convey processes sharing one PostgreSQL state store, as runners on several machines do:
 * each started as its own process with its own host name (CONVEY_HOSTNAME). What is asserted is
 * what happened (every conversion accepted once, every chunk done once, who sent what and when,
 * as the receiver saw it), never how fast: the machine running the suite may be loaded.
 */

const HOURS = 64;
const PER_HOUR = 10;
const TOTAL = HOURS * PER_HOUR;
const FROM = '2026-03-01T00:00:00Z';
const TO = '2026-03-03T16:00:00Z'; // 64 hours later
const BACKFILL = ['backfill', 'orders', '--from', FROM, '--to', TO, '--chunk', 'PT1H', '--json'];

/** 10 conversions in each of 64 hours: one backfill chunk per hour. */
function hourlyRows(): Row[] {
  const t0 = Date.parse(FROM);
  const list: Row[] = [];
  for (let h = 0; h < HOURS; h++) {
    for (let j = 0; j < PER_HOUR; j++) {
      list.push({ id: `h${h}-${j}`, at: new Date(t0 + h * 3_600_000 + j * 360_000).toISOString(), visitor: `v${h}-${j}`, revenue: 100 + j, experiments: '{"987654321": "1111111"}' });
    }
  }
  return list;
}

/** Accepted events back to their conversion ids (the Event API timestamp is the row's `at`). */
const idOf = new Map(hourlyRows().map((r) => [Date.parse(r.at), r.id]));

/** Event API settings: small batches to a slow answer, so a chunk takes a while and every runner gets some. */
function backfillJob(endpoint: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    destination: { type: 'optimizely-events', accountId: '1000', endpoint },
    settle: 'PT0S',
    lookback: 'PT0S',
    batchSize: 5,
    rateLimit: { concurrency: 1 },
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
    ...extra,
  };
}

function startRunners(project: TestProject, n: number, args: string[], env: (i: number) => NodeJS.ProcessEnv = () => ({})): SpawnedCli[] {
  return Array.from({ length: n }, (_, i) => project.spawn(args, { env: { CONVEY_HOSTNAME: `runner-${i + 1}`, ...env(i + 1) } }));
}

async function chunksDone(project: TestProject): Promise<number> {
  const { rows } = await project.db.stateSql('select count(done_at)::int as n from convey.backfill_chunks');
  return (rows[0] as { n: number } | undefined)?.n ?? 0;
}

/**
 * Every chunk of the (first) backfill done exactly once, and the backfill recorded as done; returns
 * the chunks done per host. A runner started after it finished starts a new one (read again, all
 * already sent): not counted here.
 */
async function assertBackfillDone(t: ExecutionContext, project: TestProject): Promise<Map<string, number>> {
  const first = `(select min(id) from convey.backfills)`;
  const { rows } = await project.db.stateSql(
    `select r.host, count(*)::int as chunks from convey.backfill_chunks c join convey.runs r on r.id = c.run_id
      where c.backfill_id = ${first} group by r.host order by r.host`,
  );
  const byHost = new Map((rows as Array<{ host: string; chunks: number }>).map((r) => [r.host, r.chunks]));
  t.is([...byHost.values()].reduce((a, b) => a + b, 0), HOURS, 'every chunk was done by one run');
  const { rows: backfills } = await project.db.stateSql(`select distinct status from convey.backfills`);
  t.deepEqual(backfills.map((b: { status: string }) => b.status), ['done']);
  return byHost;
}

/** Conversions a runner claimed and had not recorded (pending in its batches): in doubt once it is gone. */
async function inDoubt(project: TestProject, host: string): Promise<Set<string>> {
  const { rows } = await project.db.stateSql(
    `select l.conversion_id from convey.ledger l join convey.batches b on b.id = l.batch_id join convey.runs r on r.id = b.run_id
      where r.host = $1 and b.status = 'pending'`,
    [host],
  );
  return new Set(rows.map((r: { conversion_id: string }) => r.conversion_id));
}

/** Every conversion accepted, and any second copy only of one that was in doubt (Optimizely drops those). */
function assertEachOnce(t: ExecutionContext, receivers: Receiver[], mayRepeat: ReadonlySet<string> = new Set()): void {
  const seen = new Map<string, number>();
  for (const receiver of receivers) for (const a of receiver.accepted()) seen.set(idOf.get(a.timestamp)!, (seen.get(idOf.get(a.timestamp)!) ?? 0) + 1);
  t.is(seen.size, TOTAL, 'every conversion arrived');
  const repeated = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  t.deepEqual(repeated.filter((id) => !mayRepeat.has(id)), [], 'no conversion recorded as sent was sent again');
}

if (usingPostgres) {
  test.serial('4 runners share one backfill of 64 chunks and run a second job once: every conversion accepted once, every chunk done once, the work spread, the watermark untouched', async (t) => {
    const project = await projectWithRows(t, hourlyRows());
    await insertRows(project, hourlyRows().slice(0, 40).map((r) => ({ ...r, id: `n-${r.id}`, event_id: '222' })));
    await withReceiver({ protocol: 'events', faults: { delayMs: 60 } }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL.replace('where at >=', "where id like 'h%' and at >="), backfillJob(receiver.url));
      project.writeJob('nightly', CONVERSIONS_SQL.replace('where at >=', "where id like 'n-%' and at >="), backfillJob(receiver.url, { destination: { type: 'optimizely-events', accountId: '2000', endpoint: receiver.url } }));
      t.is((await project.cli(['migrate'])).code, 0);

      const backfills = startRunners(project, 4, BACKFILL);
      const nightly = startRunners(project, 4, ['run', '--all', '--exclude', 'orders', '--json']);
      const codes = await Promise.all([...backfills, ...nightly].map((r) => r.exited));
      t.deepEqual(codes, [0, 0, 0, 0, 0, 0, 0, 0], [...backfills, ...nightly].map((r) => r.stderr()).join('\n'));

      const byHost = await assertBackfillDone(t, project);
      t.is(byHost.size, 4, `every runner took chunks: ${JSON.stringify([...byHost])}`);
      const summaries = backfills.map((r) => JSON.parse(r.stdout()) as { details: { chunksDoneHere: number; complete: boolean }; sent: number });
      t.is(summaries.reduce((a, s) => a + s.details.chunksDoneHere, 0), HOURS, 'the runners\' own counts add up to the chunks');
      t.is(summaries.filter((s) => s.details.complete).length >= 1, true, 'the last runner to finish saw the backfill complete');

      // The nightly job: run by whichever runner took it first; the others found it held or done.
      const outcomes = nightly.map((r) => (JSON.parse(r.stdout()) as { jobs: Array<{ status: string; summary?: { sent: number } }> }).jobs[0]!);
      t.is(outcomes.reduce((a, o) => a + (o.summary?.sent ?? 0), 0), 40, 'the second job was sent once');
      t.true(outcomes.every((o) => o.status === 'succeeded' || o.status === 'held'), JSON.stringify(outcomes));

      const stats = receiver.stats();
      t.is(stats.unique, TOTAL + 40);
      t.is(stats.duplicates, 0);
      const { rows: watermarks } = await project.db.stateSql(`select job from convey.watermarks`);
      t.deepEqual(watermarks.map((w: { job: string }) => w.job), ['nightly'], 'the backfill never moved the watermark of orders');
    });
  });

  test.serial('a runner killed with SIGKILL at 30% leaves its chunk and its conversions in doubt to the others: nothing lost, nothing recorded as sent sent again', async (t) => {
    const project = await projectWithRows(t, hourlyRows());
    await withReceiver({ protocol: 'events', faults: { delayMs: 60 } }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, backfillJob(receiver.url));
      t.is((await project.cli(['migrate'])).code, 0);
      const runners = startRunners(project, 4, BACKFILL);
      await waitFor(async () => ((await chunksDone(project)) >= HOURS * 0.3 ? true : undefined), '30% of the chunks');
      runners[0]!.child.kill('SIGKILL');
      t.is(await runners[0]!.exited, null);
      // What the killed runner had claimed and not recorded: the only conversions that may arrive twice.
      const pending = await inDoubt(project, 'runner-1');
      const codes = await Promise.all(runners.slice(1).map((r) => r.exited));
      t.deepEqual(codes, [0, 0, 0], runners.map((r) => r.stderr()).join('\n'));
      await assertBackfillDone(t, project);
      assertEachOnce(t, [receiver], pending);
      const { rows: runs } = await project.db.stateSql(`select host, status from convey.runs where host = 'runner-1'`);
      t.like(runs[0], { status: 'crashed' });
    });
  });

  test.serial('a runner cut off from PostgreSQL for 20 s stops sending before the server frees its locks; back, it exits 4, and started again sends nothing already recorded', async (t) => {
    const project = await projectWithRows(t, hourlyRows());
    const relays: Relay[] = [];
    t.teardown(() => Promise.all(relays.map((r) => r.close())));
    // One receiver per runner: what each runner sent, and when, is seen apart.
    const receivers = await Promise.all([1, 2, 3].map(() => startReceiver({ protocol: 'events', faults: { delayMs: 60 } })));
    t.teardown(() => Promise.all(receivers.map((r) => r.close())));
    project.writeJob('orders', CONVERSIONS_SQL, backfillJob('${CONVEY_TEST_ENDPOINT}'));
    t.is((await project.cli(['migrate'])).code, 0);
    for (let i = 0; i < 3; i++) relays.push(await startRelay({ host: '127.0.0.1', port: Number(new URL(project.db.stateUrl!).port || 5432) }));
    const env = (i: number): NodeJS.ProcessEnv => ({ CONVEY_STATE_URL: relays[i - 1]!.through(project.db.stateUrl!), CONVEY_TEST_ENDPOINT: receivers[i - 1]!.url });
    const runners = startRunners(project, 3, BACKFILL, env);

    await waitFor(async () => ((await chunksDone(project)) >= HOURS * 0.2 && receivers[0]!.stats().acceptedRequests > 0 ? true : undefined), 'a fifth of the chunks');
    const cutAt = Date.now();
    // The server notices the silence 15 s in (convey asks for about 35 s; sooner tests the margin).
    relays[0]!.cut({ serverNoticesAfterMs: 15_000 });
    const severedAt = await relays[0]!.severed();
    // The server has ended the cut runner's sessions: what it had claimed and not recorded is in doubt.
    const pending = await inDoubt(project, 'runner-1');
    const lastBefore = Math.max(...receivers[0]!.accepted().map((a) => a.receivedAt));
    t.true(lastBefore < severedAt, `runner-1 stopped sending ${severedAt - lastBefore} ms before the server freed its locks (cut at ${cutAt})`);
    const arrivedWhileCut = receivers[0]!.stats().requests;
    await new Promise((r) => setTimeout(r, 20_000 - (Date.now() - cutAt)));
    relays[0]!.heal();

    t.is(await runners[0]!.exited, 4, 'back, it finds its locks gone: exit 4');
    t.regex(runners[0]!.stderr(), /no answer from the state store|lost the state store connection/);
    t.is(receivers[0]!.stats().requests, arrivedWhileCut, 'nothing sent after the cut was noticed, nor once back');
    const codes = await Promise.all(runners.slice(1).map((r) => r.exited));
    t.deepEqual(codes, [0, 0], runners.map((r) => r.stderr()).join('\n'));

    // Started again (the scheduler's retry): it does what is left (its old chunk, when the others
    // had finished before the server let it go) and sends nothing that was recorded as sent.
    const again = project.spawn(BACKFILL, { env: { CONVEY_HOSTNAME: 'runner-1', ...env(1) } });
    t.is(await again.exited, 0, again.stderr());
    await assertBackfillDone(t, project);
    assertEachOnce(t, receivers, pending);
  });

  test.serial('a runner frozen (SIGSTOP) keeps its chunk while the others finish theirs; status shows it in progress; resumed (SIGCONT) it finishes the backfill', async (t) => {
    const project = await projectWithRows(t, hourlyRows());
    await withReceiver({ protocol: 'events', faults: { delayMs: 60 } }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, backfillJob(receiver.url));
      t.is((await project.cli(['migrate'])).code, 0);
      const runners = startRunners(project, 3, BACKFILL);
      const holds = async (): Promise<boolean> =>
        (await project.db.stateSql(`select 1 from convey.backfill_takes t join convey.runs r on r.id = t.run_id where r.host = 'runner-1'`)).rows.length > 0;
      // Frozen while it holds a chunk: checked again once frozen (a commit it had sent still lands).
      await waitFor(async () => {
        if (!(await holds()) || (await chunksDone(project)) < 4) return undefined;
        runners[0]!.child.kill('SIGSTOP');
        await new Promise((r) => setTimeout(r, 300));
        if (await holds()) return true;
        runners[0]!.child.kill('SIGCONT');
        return undefined;
      }, 'runner-1 to be frozen holding a chunk');
      t.teardown(() => void runners[0]!.child.kill('SIGCONT'));
      const codes = await Promise.all(runners.slice(1).map((r) => r.exited));
      t.deepEqual(codes, [0, 0], runners.map((r) => r.stderr()).join('\n'));
      t.is(await chunksDone(project), HOURS - 1, 'the others did every chunk but the frozen runner\'s');

      const status = await project.cli(['status', 'orders', '--json']);
      const [backfill] = status.json<{ jobs: Array<{ backfills: Array<{ done: number; waiting: number; inProgress: Array<{ host: string }> }> }> }>().jobs[0]!.backfills;
      t.like(backfill, { done: HOURS - 1, waiting: 0 });
      t.deepEqual(backfill!.inProgress.map((p) => p.host), ['runner-1']);
      t.regex((await project.cli(['status', 'orders'])).stdout, /backfill +#\d+ .*: 63 of 64 chunks done, 1 in progress \(runner-1\), 0 waiting/);

      runners[0]!.child.kill('SIGCONT');
      t.is(await runners[0]!.exited, 0, runners[0]!.stderr());
      t.like(JSON.parse(runners[0]!.stdout()), { details: { complete: true, chunksDone: HOURS } });
      await assertBackfillDone(t, project);
      assertEachOnce(t, [receiver]);
    });
  });
} else {
  test('on the embedded store one process owns the state: the backfill takes its chunks in order, and the rate budget is the process\'s own', async (t) => {
    const project = await projectWithRows(t, hourlyRows().slice(0, 4 * PER_HOUR));
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, backfillJob(receiver.url, { rateLimit: { concurrency: 2, perSecond: 100 } }));
      const run = await project.cli(['backfill', 'orders', '--from', FROM, '--to', '2026-03-01T04:00:00Z', '--chunk', 'PT1H', '--json']);
      t.is(run.code, 0, run.stderr);
      t.like(run.json(), { sent: 4 * PER_HOUR, details: { chunks: 4, chunksDone: 4, chunksDoneHere: 4, complete: true } });
      const { rows: chunks } = await project.db.stateSql(`select run_id from convey.backfill_chunks order by done_at, chunk_start`);
      t.deepEqual(chunks.map((c: { run_id: string }) => Number(c.run_id)), [1, 1, 1, 1]);
      const { rows: budgets } = await project.db.stateSql('select count(*)::int as n from convey.rate_budgets');
      t.is((budgets[0] as { n: number }).n, 0, 'no shared schedule: one process, its own token bucket');
      t.is(receiver.stats().unique, 4 * PER_HOUR);
    });
  });
}
