import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { CONVERSIONS_SQL, classicJob, eventsJob, insertRows, rows, withReceiver, type SummaryJson, projectWithRows } from './helpers/fixtures.ts';
import type { PlanResult } from '../src/pipeline/plan-window.ts';
import { waitFor } from './helpers/project.ts';

type PlanJson = PlanResult;

test('plan shows exactly what the run that follows it does, and changes nothing', async (t) => {
  const project = await projectWithRows(t, rows(50));

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    // A lookback reaching back to March re-reads the first 50, which the ledger holds as sent.
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { lookback: 'P400D' }));
    t.is((await project.cli(['run', 'orders'])).code, 0);
    await insertRows(project, [
      ...rows(30, '2026-03-05T00:00:00Z', 'n'),
      { ...rows(1, '2026-03-06T00:00:00Z', 'bad')[0]!, revenue: '9.99' },
      { ...rows(1, '2026-03-06T00:00:01Z', 'bad2')[0]!, event_id: 'x' },
      { ...rows(1, '2026-03-06T00:00:02Z', 'bad3')[0]!, revenue: '0.5' },
    ]);
    const runsBefore = (await project.db.stateSql('select count(*)::int as n from convey.runs')).rows[0].n;
    const out = join(project.dir, 'plan.ndjson');
    const plan = await project.cli(['plan', 'orders', '--json', '--out', out]);
    t.is(plan.code, 0, plan.stderr);
    const p = plan.json<PlanJson>();
    t.like(p, { job: 'orders', read: 83, wouldSend: 30, alreadySent: 50, wouldReject: 3, rejectsByReason: { bad_revenue: 2, bad_event_id: 1 } });
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    t.is(lines.reduce((n, l) => n + (JSON.parse(l) as { body: { visitors: unknown[] } }).body.visitors.length, 0), 30);
    t.is((await project.db.stateSql('select count(*)::int as n from convey.runs')).rows[0].n, runsBefore, 'plan records nothing');
    t.is(receiver.stats().unique, 50, 'plan sends nothing');

    const run = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.is(run.read, p.read);
    t.is(run.sent, p.wouldSend);
    t.is(run.alreadySent, p.alreadySent);
    t.is(run.rejected, p.wouldReject);
    t.is(run.window!.start, p.window.start);

    const human = await project.cli(['plan', 'orders']);
    t.regex(human.stdout, /would send {4}0/);
    t.regex(human.stdout, /already sent {2}80/);
    t.regex(human.stdout, /bad_revenue: 2\n\s+bad0001: revenue_cents "9.99" is not an integer/);
  });
});

test('plan exits non-zero on a broken mapping, so it can gate a pull request', async (t) => {
  const project = await projectWithRows(t, []);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('broken', CONVERSIONS_SQL.replace('visitor as visitor_id', 'visitor'), eventsJob(receiver));
    const missing = await project.cli(['plan', 'broken']);
    t.is(missing.code, 2);
    t.regex(missing.stderr, /no \\"visitor_id\\" column, which is required/);
    project.writeJob('sqlerror', CONVERSIONS_SQL.replace('from conversions', 'from conversionz'), eventsJob(receiver));
    const sqlError = await project.cli(['plan', 'sqlerror']);
    t.is(sqlError.code, 2);
    t.regex(sqlError.stderr, /conversionz/);
  });
});

test('a backfill killed mid-way resumes where it stopped, sends each conversion once, and never moves the watermark', async (t) => {
  const project = await projectWithRows(t, []);
  const perDay = 60;
  for (let day = 1; day <= 8; day++) await insertRows(project, rows(perDay, `2026-03-0${day}T08:00:00Z`, `d${day}-`));
  const total = perDay * 8;

  await withReceiver({ protocol: 'events', faults: { delayMs: 25 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 10, rateLimit: { concurrency: 2, perSecond: 40 } }));
    const args = ['backfill', 'orders', '--from', '2026-03-01', '--to', '2026-03-09', '--json'];
    const child = project.spawn(args);
    await waitFor(() => (receiver.stats().unique >= perDay * 3 ? true : undefined), 'three days to be sent');
    child.child.kill('SIGKILL');
    await child.exited;
    await new Promise((r) => setTimeout(r, 200));
    const { rows: chunks } = await project.db.stateSql(`select count(*) filter (where done_at is not null)::int as done from convey.backfill_chunks`);
    t.true(chunks[0].done >= 2 && chunks[0].done < 8, `${chunks[0].done} chunks were recorded done before the kill`);
    const inDoubt = (await project.db.stateSql(`select conversion_id from convey.conversions where status = 'pending'`)).rows.length;

    receiver.setFaults({});
    const resumed = await project.cli(args);
    t.is(resumed.code, 0, resumed.stderr);
    const summary = resumed.json<SummaryJson & { details: Record<string, unknown> }>();
    t.like(summary.details, { resumed: true, chunks: 8, chunksDone: 8, complete: true });
    t.is(summary.details.chunksDoneBefore, chunks[0].done);
    t.is(summary.resent, inDoubt);
    t.is(receiver.stats().unique, total, 'every conversion arrived');
    t.true(receiver.stats().duplicates <= inDoubt, 'the only copies are of conversions in flight at the kill, which Optimizely drops');
    t.deepEqual(summary.watermark, { before: null, after: null }, 'the nightly watermark is untouched');
    t.is((await project.db.stateSql('select count(*)::int as n from convey.watermarks')).rows[0].n, 0);

    // Run again: a finished backfill starts a new one, and the ledger stops every resend.
    const again = (await project.cli(args)).json<SummaryJson>();
    t.like(again, { sent: 0, alreadySent: total });
  });
});

test('backfill --resend sends again with the same uuid and timestamp, so Optimizely keeps one copy', async (t) => {
  const project = await projectWithRows(t, rows(20, '2026-03-10T12:00:00Z'));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { timezone: 'America/New_York' }));
    t.like((await project.cli(['run', 'orders', '--json'])).json<SummaryJson>(), { sent: 20 });
    const watermark = (await project.db.stateSql('select value from convey.watermarks')).rows[0].value;

    const resend = (await project.cli(['backfill', 'orders', '--from', '2026-03-10', '--to', '2026-03-11', '--resend', '--json'])).json<SummaryJson>();
    t.like(resend, { mode: 'backfill', sent: 20, alreadySent: 0 });
    t.is(resend.window!.start as string, '2026-03-10T04:00:00.000000Z', 'a date is a whole day in the job\'s zone');
    t.is(receiver.stats().unique, 20);
    t.is(receiver.stats().duplicates, 20, 'the resends are recognised as the same events');
    t.is((await project.db.stateSql('select value from convey.watermarks')).rows[0].value, watermark);
  });
});

test('backfill --group: a runner its scheduler starts after the others finished does nothing, where without the group it would resend the range', async (t) => {
  const project = await projectWithRows(t, rows(20, '2026-03-10T12:00:00Z'));
  // The classic endpoint does not de-duplicate: every request is a conversion counted.
  await withReceiver({ protocol: 'classic' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver));
    t.like((await project.cli(['run', 'orders', '--json'])).json<SummaryJson>(), { sent: 20 });
    const backfill = (group: string): string[] => ['backfill', 'orders', '--from', '2026-03-10', '--to', '2026-03-11', '--resend', '--group', group, '--json'];

    const first = await project.cli(backfill('ci-1001'));
    t.is(first.code, 0, first.stderr);
    t.like(first.json<SummaryJson>(), { sent: 20, details: { group: 'ci-1001', complete: true } });
    t.is(receiver.stats().acceptedRequests, 40);

    // The late runner of the same group: the backfill is done, nothing is read or sent.
    const late = await project.cli(backfill('ci-1001'));
    t.is(late.code, 0, late.stderr);
    t.like(late.json<SummaryJson>(), { read: 0, sent: 0, details: { finishedByGroup: true, chunksDoneHere: 0, complete: true } });
    t.regex(late.stderr, /finished by the other runners of group ci-1001: nothing to do/);
    t.is(receiver.stats().acceptedRequests, 40);

    // Another start (another group, or none) is a new backfill: what a user starting one asks for.
    t.like((await project.cli(backfill('ci-1002'))).json<SummaryJson>(), { sent: 20 });
    t.is(receiver.stats().acceptedRequests, 60);
    t.is((await project.cli(['backfill', 'orders', '--from', '2026-03-10', '--to', '2026-03-11', '--group', 'two words'])).code, 2);
  });
});

test('status reports the watermark, lag, last runs, waiting failures and open rejects', async (t) => {
  const project = await projectWithRows(t, [...rows(10), { ...rows(1, '2026-03-02T00:00:00Z', 'bad')[0]!, revenue: '1.5' }]);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    project.writeJob('idle', CONVERSIONS_SQL, eventsJob(receiver));
    await project.cli(['run', 'orders']);
    const status = await project.cli(['status', '--json']);
    t.is(status.code, 0, status.stderr);
    const { jobs } = status.json<{ jobs: Array<Record<string, any>> }>();
    t.deepEqual(jobs.map((j) => j.job), ['idle', 'orders']);
    const orders = jobs.find((j) => j.job === 'orders')!;
    t.truthy(orders.watermark);
    t.true(orders.lagSeconds >= 0 && orders.lagSeconds < 120);
    t.is(orders.running, null);
    t.is(orders.failed, 0);
    t.is(orders.rejects, 1);
    t.is(orders.lastRuns.length, 1);
    t.like(orders.lastRuns[0], { mode: 'run', status: 'succeeded', counts: { read: 11, sent: 10, rejected: 1 } });
    t.like(jobs.find((j) => j.job === 'idle'), { watermark: null, lastRuns: [] });
    const human = await project.cli(['status', 'orders']);
    t.regex(human.stdout, /rejects {4}1 open \(convey rejects orders\)/);
  });
});

test('status at a glance: one line per job (state, last run, lag, failing since, rejects, warnings); several jobs by name; a recovered job is ok again', async (t) => {
  const project = await projectWithRows(t, rows(6));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    await withReceiver({ protocol: 'classic', faults: { failRate: 1 } }, async (failing) => {
      project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
      project.writeJob('broken', CONVERSIONS_SQL, classicJob(failing));
      project.writeJob('idle', CONVERSIONS_SQL, eventsJob(receiver));
      t.is((await project.cli(['run', 'orders'])).code, 0);
      t.is((await project.cli(['run', 'broken'])).code, 1);
      t.is((await project.cli(['run', 'broken'])).code, 1);

      const table = (await project.cli(['status'])).stdout.trimEnd().split('\n');
      t.is(table.length, 4, table.join('\n'));
      // An age: "12 s", "3 min", "2 h 5 min" (however slow the machine).
      const age = '\\d+ (?:s|min|h|d)(?: \\d+ (?:min|h))?';
      t.regex(table[0]!, /^JOB +STATE +LAST RUN +LAG +FAILING SINCE +REJECTS +WARNINGS$/);
      t.regex(table[1]!, new RegExp(`^broken +failing +#3 run failed ${age} ago +${age} +${age} ago \\(2 runs\\) +0 +-$`));
      t.regex(table[2]!, /^idle +never run +- +- +- +0 +-$/);
      t.regex(table[3]!, new RegExp(`^orders +ok +#1 run succeeded ${age} ago +${age} +- +0 +-$`));
      // Several jobs by name: their lines only.
      const two = (await project.cli(['status', 'orders', 'idle'])).stdout.trimEnd().split('\n');
      t.deepEqual(two.slice(1).map((line) => line.split(/ +/)[0]), ['orders', 'idle']);
      const json = (await project.cli(['status', '--json'])).json<{ jobs: Array<Record<string, any>> }>().jobs;
      t.deepEqual(json.map((j) => [j.job, j.state]), [['broken', 'failing'], ['idle', 'never run'], ['orders', 'ok']]);
      t.like(json[0], { failingSince: { runId: 2, runs: 2 }, failed: 6, lastFailure: { runId: 3, failures: [{ cause: 'http_500', conversions: 6 }] } });

      // Warnings are the run's verdict (src/verdict/), stored with the run: the table names their
      // checks, the detail has their sentences.
      const warnings = [
        { check: 'low_volume', message: 'read 6 rows, usually about 40,000 for a window this long (4 runs at this time of the week); fewer than 8,000 is unusual', observed: 6 },
        { check: 'new_reject_reason', message: 'rows rejected for a reason this job never had before: bad_revenue (1 row: revenue_cents "1.5" is not an integer)', observed: 1, reasons: ['bad_revenue'] },
      ];
      await project.db.stateSql(`update convey.runs set warnings = $1 where id = 1`, [JSON.stringify(warnings)]);
      t.regex((await project.cli(['status'])).stdout, /^orders +ok .* low_volume, new_reject_reason$/m);
      t.regex((await project.cli(['status', 'orders'])).stdout, /warnings +low_volume: read 6 rows, usually about 40,000 .*\n +new_reject_reason: rows rejected for a reason/);
      t.deepEqual((await project.cli(['status', 'orders', '--json'])).json<{ jobs: Array<{ warnings: unknown[] }> }>().jobs[0]!.warnings, warnings);
    });
  });
  // The endpoint is fixed: the next run sends the failed conversions first, and the job is ok.
  await withReceiver({ protocol: 'classic' }, async (fixed) => {
    project.writeJob('broken', CONVERSIONS_SQL, classicJob(fixed));
    const recovered = await project.cli(['run', 'broken', '--json']);
    t.is(recovered.code, 0, recovered.stderr);
    t.like(recovered.json<SummaryJson>(), { retried: 6, sent: 6, failures: [] });
    const status = (await project.cli(['status', 'broken', '--json'])).json<{ jobs: Array<Record<string, any>> }>().jobs[0]!;
    t.like(status, { state: 'ok', failingSince: null, failed: 0, lastRun: { runId: 4, status: 'succeeded' }, lastFailure: { runId: 3 } });
  });
});

test('rejects lists reasons and rows; --replay after a mapping fix sends those that now pass', async (t) => {
  const project = await projectWithRows(t, []);
  const dollars = rows(4, '2026-03-03T00:00:00Z', 'usd').map((r) => ({ ...r, revenue: '19.99' }));
  await insertRows(project, [...rows(10), ...dollars]);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.like((await project.cli(['run', 'orders', '--json'])).json<SummaryJson>(), { sent: 10, rejected: 4 });

    const listed = await project.cli(['rejects', 'orders', '--json']);
    const { rejects } = listed.json<{ rejects: Array<{ conversionId: string; reasonCode: string; row: Record<string, unknown> }> }>();
    t.deepEqual(rejects.map((r) => r.conversionId).sort(), ['usd0001', 'usd0002', 'usd0003', 'usd0004']);
    t.true(rejects.every((r) => r.reasonCode === 'bad_revenue' && r.row.revenue_cents === '19.99'));
    t.is((await project.cli(['rejects', 'orders', '--reason', 'refused', '--json'])).json<{ rejects: unknown[] }>().rejects.length, 0);

    // The analytics engineer fixes the mapping: this column is in dollars.
    project.writeJob('orders', CONVERSIONS_SQL.replace('revenue as revenue_cents', 'round(revenue * 100) as revenue_cents'), eventsJob(receiver));
    const replay = await project.cli(['rejects', 'orders', '--replay', '--json']);
    t.is(replay.code, 0, replay.stderr);
    const summary = replay.json<SummaryJson & { details: Record<string, number> }>();
    t.like(summary, { mode: 'replay', read: 4, sent: 4, rejected: 0 });
    t.like(summary.details, { replayable: 4, resolved: 4, rejectedAgain: 0, notFound: 0 });
    t.deepEqual(
      receiver.accepted().filter((a) => a.revenue === 1999).length,
      4,
      'sent with the fixed revenue',
    );
    t.is((await project.cli(['rejects', 'orders', '--json'])).json<{ rejects: unknown[] }>().rejects.length, 0);
    t.like((await project.cli(['status', 'orders', '--json'])).json<{ jobs: Array<{ rejects: number }> }>().jobs[0], { rejects: 0 });
  });
});

test('retry sends failed conversions now, from the ledger, without reading the source', async (t) => {
  const project = await projectWithRows(t, rows(12));
  await withReceiver({ protocol: 'events', faults: { failRate: 1 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.is((await project.cli(['run', 'orders'])).code, 1);
    await project.db.sourceSql('drop table conversions');
    // Still failing: the retry's summary says why, as a run's does.
    const again = await project.cli(['retry', 'orders', '--json']);
    t.is(again.code, 1, again.stderr);
    t.like(again.json<SummaryJson>(), { mode: 'retry', failed: 12, failures: [{ cause: 'http_500', conversions: 12, retryable: true, endpoint: receiver.url }] });
    receiver.setFaults({});
    const retry = await project.cli(['retry', 'orders', '--json']);
    t.is(retry.code, 0, retry.stderr);
    t.like(retry.json<SummaryJson>(), { mode: 'retry', read: 0, sent: 12, retried: 12, failed: 0, window: null, failures: [] });
    t.is(receiver.stats().unique, 12);
  });
});

test('state show, set and reset: confirmed, recorded in the history with who and from what to what', async (t) => {
  const project = await projectWithRows(t, rows(5));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.regex((await project.cli(['state', 'show', 'orders'])).stdout, /no watermark yet; the next run starts at 2026-01-01T00:00:00.000000Z/);
    await project.cli(['run', 'orders']);

    const refused = await project.cli(['state', 'set', 'orders', '2026-03-01T00:00:02Z']);
    t.is(refused.code, 2, 'no terminal to confirm on, no --yes: refused');
    const set = await project.cli(['state', 'set', 'orders', '2026-03-01T00:00:02Z', '--yes']);
    t.is(set.code, 0, set.stderr);
    t.is((await project.cli(['state', 'show', 'orders', '--json'])).json<{ watermark: string }>().watermark, '2026-03-01T00:00:02.000000Z');
    const { rows: history } = await project.db.stateSql(`select mode, note, actor from convey.runs where mode = 'state'`);
    t.is(history.length, 1);
    t.regex(history[0].note, /watermark changed from .+ to 2026-03-01 00:00:02\+00|watermark changed from .+ to 2026-03-01T00:00:02\.000000Z/);
    t.truthy(history[0].actor);

    // Moved back: the next run re-reads rows 3..5, the ledger skips them.
    t.like((await project.cli(['run', 'orders', '--json'])).json<SummaryJson>(), { read: 3, sent: 0, alreadySent: 3 });
    t.is((await project.cli(['state', 'reset', 'orders', '--yes'])).code, 0);
    t.like((await project.cli(['state', 'show', 'orders', '--json'])).json<{ watermark: string | null }>(), { watermark: null });
    t.like((await project.cli(['run', 'orders', '--json'])).json<SummaryJson>(), { read: 5, sent: 0, alreadySent: 5 });
  });
});

test('backfill --resend over conversions waiting to be retried sends each of them once, not once by the retry step and again by the chunk', async (t) => {
  const project = await projectWithRows(t, rows(6, '2026-03-10T12:00:00Z'));
  await withReceiver({ protocol: 'events', faults: { failRate: 1 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.is((await project.cli(['run', 'orders'])).code, 1, 'every conversion failed and waits in the ledger');
    receiver.setFaults({});

    const resend = await project.cli(['backfill', 'orders', '--from', '2026-03-10', '--to', '2026-03-11', '--resend', '--json']);
    t.is(resend.code, 0, resend.stderr);
    t.like(resend.json<SummaryJson>(), { read: 6, retried: 6, sent: 6, skipped: 6, failed: 0 });
    t.is(receiver.stats().unique, 6);
    t.is(receiver.stats().duplicates, 0, 'a conversion the retry step just sent is not resent by the chunk that reads it');
  });
});

test('a resend the endpoint refuses leaves the conversion recorded as sent, so no later run or backfill sends it again', async (t) => {
  const project = await projectWithRows(t, rows(5, '2026-03-10T12:00:00Z'));
  let refusing = false;
  const refuse = (c: { visitorId: string }): string | undefined => (refusing && c.visitorId === 'v3' ? 'no longer valid' : undefined);
  await withReceiver({ protocol: 'classic', refuse }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver));
    t.like((await project.cli(['run', 'orders', '--json'])).json<SummaryJson>(), { sent: 5 });

    refusing = true;
    const range = ['--from', '2026-03-10', '--to', '2026-03-11', '--tz', 'UTC', '--json'];
    const resend = (await project.cli(['backfill', 'orders', ...range, '--resend'])).json<SummaryJson>();
    t.like(resend, { sent: 4, rejected: 1 });
    refusing = false;

    const { rows: ledger } = await project.db.stateSql(`select status from convey.conversions where conversion_id = 'c0003'`);
    t.deepEqual(ledger, [{ status: 'sent' }], 'it was delivered by the first run; the refused resend does not erase that');
    const backfill = (await project.cli(['backfill', 'orders', ...range])).json<SummaryJson>();
    t.like(backfill, { sent: 0, alreadySent: 5 });
    t.is(receiver.accepted().filter((a) => a.visitorId === 'v3').length, 1, 'the classic endpoint counts every copy: c0003 went once');
  });
});

test('a plan or dry run stopped by a signal exits 130/143 and prints no partial counts as if they were the plan', async (t) => {
  const project = await projectWithRows(t, rows(20));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    // A signal that arrives before the reading starts: the source is never read to the end.
    const term = new AbortController();
    term.abort('SIGTERM');
    const plan = await project.cli(['plan', 'orders', '--json'], { signal: term.signal });
    t.is(plan.code, 143, plan.stdout);
    t.is(plan.stdout, '', 'no plan with read 0 for a CI check to believe');
    t.regex(plan.stderr, /INTERRUPTED/);

    const int = new AbortController();
    int.abort('SIGINT');
    const dry = await project.cli(['run', 'orders', '--dry-run'], { signal: int.signal });
    t.is(dry.code, 130);
    t.notRegex(dry.stderr, /dry run: would send/);

    // Not interrupted, the same plan is whole.
    t.like((await project.cli(['plan', 'orders', '--json'])).json(), { read: 20, wouldSend: 20 });
  });
});

test('state set refuses a time in the future, which would make every run succeed while sending nothing until then', async (t) => {
  const project = await projectWithRows(t, rows(5));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const nextYear = new Date(Date.now() + 365 * 86_400_000).toISOString().slice(0, 10);
    const future = await project.cli(['state', 'set', 'orders', nextYear, '--yes']);
    t.is(future.code, 2, future.stdout);
    t.regex(future.stderr, /in the future.*USAGE/);
    t.like((await project.cli(['state', 'show', 'orders', '--json'])).json(), { watermark: null });
    t.like((await project.cli(['run', 'orders', '--json'])).json<SummaryJson>(), { read: 5, sent: 5 });
  });
});

test('status for a job that is neither in jobs/ nor in the history says so, instead of an empty status with exit 0', async (t) => {
  const project = await projectWithRows(t, rows(2));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const typo = await project.cli(['status', 'ordrs', '--json']);
    t.is(typo.code, 2);
    t.is(typo.stdout, '');
    t.regex(typo.stderr, /job \\"ordrs\\" not found.*CONFIG_INVALID.*Did you mean \\"orders\\"/);
    t.is((await project.cli(['status', '../orders'])).code, 2);

    // A job never run is a job all the same; one whose files were removed still has its history.
    t.like((await project.cli(['status', 'orders', '--json'])).json<{ jobs: unknown[] }>().jobs[0], { job: 'orders', watermark: null, lastRuns: [] });
    t.is((await project.cli(['run', 'orders'])).code, 0);
    rmSync(join(project.dir, 'jobs', 'orders.json'));
    const removed = await project.cli(['status', 'orders', '--json']);
    t.is(removed.code, 0, removed.stderr);
    t.is(removed.json<{ jobs: Array<{ lastRuns: unknown[] }> }>().jobs[0]!.lastRuns.length, 1);
  });
});

test("convey's own environment settings are checked at start: a mistyped stop timeout is not a graceful stop of zero seconds", async (t) => {
  const project = await projectWithRows(t, rows(2));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    for (const bad of [{ CONVEY_STOP_TIMEOUT_MS: '60s' }, { CONVEY_LOG_LEVEL: 'verbose' }]) {
      const child = project.spawn(['run', 'orders'], { env: bad });
      t.is(await child.exited, 2, child.stderr());
      t.regex(child.stderr(), new RegExp(`${Object.keys(bad)[0]}.*CONFIG_INVALID`));
    }
    t.is(receiver.stats().requests, 0);
    // Empty is unset, as for ${NAME} in config.
    const child = project.spawn(['run', 'orders'], { env: { CONVEY_STOP_TIMEOUT_MS: '', CONVEY_LOG_LEVEL: 'warn' } });
    t.is(await child.exited, 0, child.stderr());
    t.is(receiver.stats().unique, 2);
  });
});

// The embedded store, whatever TEST_DATABASE_URL says: CONVEY_STATE_URL empty is unset. These
// tests are serial (ava runs them before the others): PGlite runs in this process, and its
// initdb would stall the receivers of concurrent tests for seconds under TEST_DATABASE_URL.
const embeddedState = { CONVEY_STATE_URL: '' };

test.serial('a lock file left by a killed process whose pid this process now has (a restarted container) is stale: the next run takes the store', async (t) => {
  const project = await projectWithRows(t, rows(2));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.is((await project.cli(['migrate'], { env: embeddedState })).code, 0);
    // project.cli runs in this process, as the next run does in a container restarted after
    // kill -9: convey is pid 1 again, on the same host name.
    const lockFile = join(project.dir, '.convey', 'state.lock');
    writeFileSync(lockFile, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: '2026-01-01T00:00:00.000Z', command: 'convey run orders', job: 'orders', runId: 7 }));
    const next = await project.cli(['run', 'orders', '--json'], { env: embeddedState });
    t.is(next.code, 0, next.stderr);
    t.is(next.json<SummaryJson>().sent, 2);
    t.false(existsSync(lockFile), 'the lock is released at the end');
  });
});

test.serial('a lock file convey cannot check (another host) is refused with exit 75, naming the file to delete if that process is gone', async (t) => {
  const project = await projectWithRows(t, rows(2));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.is((await project.cli(['migrate'], { env: embeddedState })).code, 0);
    const lockFile = join(project.dir, '.convey', 'state.lock');
    writeFileSync(lockFile, JSON.stringify({ pid: 1, host: 'runner-7f3a', startedAt: '2026-01-01T00:00:00.000Z', command: 'convey run orders' }));
    const refused = await project.cli(['run', 'orders'], { env: embeddedState });
    t.is(refused.code, 75, refused.stderr);
    t.regex(refused.stderr, /pid 1 on runner-7f3a/);
    t.true(refused.stderr.includes(JSON.stringify(lockFile).slice(1, -1)), 'the hint names the lock file');
    t.regex(refused.stderr, /delete/);
    t.is(receiver.stats().requests, 0);
    t.true(existsSync(lockFile), 'a lock that cannot be checked is left alone');
  });
});

test.serial('status while a run holds the embedded store says the figures are unknown, not "none yet" and 0', async (t) => {
  const project = await projectWithRows(t, rows(2));
  await withReceiver({ protocol: 'events', faults: { delayMs: 30 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 10, rateLimit: { concurrency: 1, perSecond: 20 } }));
    t.is((await project.cli(['run', 'orders'], { env: embeddedState })).code, 0);
    await insertRows(project, rows(300, '2026-03-02T00:00:00Z', 'late'));
    const running = project.spawn(['backfill', 'orders', '--from', '2026-03-01', '--to', '2026-03-03'], { env: embeddedState });
    await waitFor(() => (receiver.stats().acceptedRequests >= 2 ? true : undefined), 'the backfill to start sending');
    const status = await project.cli(['status', 'orders'], { env: embeddedState });
    t.is(status.code, 0, status.stderr);
    t.regex(status.stdout, new RegExp(`running +run \\d+ \\(convey backfill orders, pid ${running.child.pid}`));
    t.notRegex(status.stdout, /none yet|0 failed|0 open/, 'the watermark and counts were not read');
    t.regex(status.stdout, /watermark +unknown/);
    t.is(await running.exited, 0, running.stderr());
  });
});
