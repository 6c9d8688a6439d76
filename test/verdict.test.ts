import test, { type ExecutionContext } from 'ava';
import { worstExitCode } from '../src/cli/run-many.ts';
import type { AlertSettings } from '../src/config/alerts.ts';
import { successfulRunsBefore, type HistoryRun } from '../src/state/sql/history.ts';
import { openStateStore, stateLocation } from '../src/state/store.ts';
import { checkRowsRead, checkWatermarkLag, type RunFacts } from '../src/verdict/checks.ts';
import { comparableRuns, weekMinute } from '../src/verdict/comparable.ts';
import type { RunWarning } from '../src/verdict/warning.ts';
import { CONVERSIONS_SQL, eventsJob, insertRows, projectWithRows, withReceiver, type SummaryJson } from './helpers/fixtures.ts';
import { rowsBetween, writeHistory, type PastRun } from './helpers/history.ts';
import type { TestProject } from './helpers/project.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// ---- The checks on their own: figures in, warning out -------------------------------------

/** A past run as the history query returns it: the middle of its window in `zone` computed. */
function past(run: Omit<HistoryRun, 'midWeekMinute' | 'checks'>, zone = 'UTC'): HistoryRun {
  return { checks: [], ...run, midWeekMinute: weekMinute((run.windowStartMs + run.windowEndMs) / 2, zone) };
}

/** A nightly run of `read` rows whose window is the day ending `daysAgo` days before `now`. */
function nightly(now: number, daysAgo: number, read: number, zone = 'UTC'): HistoryRun {
  const end = now - daysAgo * DAY;
  return past({ id: daysAgo, windowStartMs: end - DAY, windowEndMs: end, read, rejected: 0, startedAtMs: end + 600_000, finishedAtMs: end + 660_000, watermarkBeforeMs: end - DAY, watermarkAfterMs: end }, zone);
}

function facts(now: number, read: number, extra: Partial<RunFacts> = {}): RunFacts {
  return { window: { startMs: now - DAY, endMs: now }, read, rejected: 0, startedAtMs: now + 600_000, endedAtMs: now + 660_000, watermarkBeforeMs: now - DAY, watermarkAfterMs: now, ...extra };
}

const ROWS: AlertSettings['rowsRead'] = { enabled: true, below: 0.2, above: 3, minRows: 100 };
// A Sunday noon in Berlin: windows are days ending at noon.
const SUNDAY = Date.parse('2026-03-15T11:00:00Z');

test('a weekday business: Sundays are compared with Sundays once there are three of them, so a quiet Sunday is not a warning', (t) => {
  // Four weeks: 400 rows a weekday, 20 on Sundays.
  const history = Array.from({ length: 28 }, (_, i) => nightly(SUNDAY, i + 1, (i + 1) % 7 === 0 ? 20 : 400, 'Europe/Berlin'));
  const reference = comparableRuns({ startMs: SUNDAY - DAY, endMs: SUNDAY }, history, 'Europe/Berlin');
  t.is(reference.matched, 'week');
  t.deepEqual(reference.runs.map((r) => r.id), [7, 14, 21, 28]);
  t.is(checkRowsRead(facts(SUNDAY, 20), reference, { ...ROWS, minRows: 10 }), undefined);
  // A Monday with a Sunday's volume is what the season shows up: every run of the range had 20
  // at least, so without matching by weekday it would pass.
  const monday = SUNDAY + DAY;
  const mondays = comparableRuns({ startMs: monday - DAY, endMs: monday }, history.map((r) => ({ ...r })), 'Europe/Berlin');
  t.is(mondays.matched, 'week');
  t.like(checkRowsRead(facts(monday, 20), mondays, { ...ROWS, minRows: 10 }), { check: 'low_volume', observed: 20, usual: 400, threshold: 80 });
  t.is(checkRowsRead(facts(monday, 20), { runs: history, matched: 'all' }, { ...ROWS, minRows: 10 }), undefined);
});

test('a young job is compared with the range of everything seen: the first quiet day is not a collapse, zero rows is', (t) => {
  // Ten days: weekdays at 400, the weekend before at 90: fewer than three of any weekday.
  const history = Array.from({ length: 10 }, (_, i) => nightly(SUNDAY, i + 1, [6, 7].includes(i + 1) ? 90 : 400));
  const reference = comparableRuns({ startMs: SUNDAY - DAY, endMs: SUNDAY }, history, 'UTC');
  t.is(reference.matched, 'all');
  t.is(checkRowsRead(facts(SUNDAY, 30), reference, ROWS), undefined, '30 is a third of the quietest day seen: within the range');
  t.like(checkRowsRead(facts(SUNDAY, 0), reference, ROWS), { check: 'low_volume', threshold: 18 });
  t.like(checkRowsRead(facts(SUNDAY, 1500), reference, ROWS), { check: 'high_volume', threshold: 1200 });
});

test('rows are compared per hour of window: the run after a missed night reads two days and is not unusual', (t) => {
  const history = Array.from({ length: 10 }, (_, i) => nightly(SUNDAY, i + 1, 40_000));
  const twoDays = { startMs: SUNDAY - 2 * DAY, endMs: SUNDAY };
  const reference = comparableRuns(twoDays, history, 'UTC');
  t.is(checkRowsRead(facts(SUNDAY, 80_000, { window: twoDays }), reference, ROWS), undefined);
  t.like(checkRowsRead(facts(SUNDAY, 400_000, { window: twoDays }), reference, ROWS), { check: 'high_volume', usual: 80_000 });
});

test('a job of a few rows a night gets no volume verdict: its ordinary swings are larger than any factor', (t) => {
  const history = Array.from({ length: 10 }, (_, i) => nightly(SUNDAY, i + 1, 12));
  t.is(checkRowsRead(facts(SUNDAY, 0), comparableRuns({ startMs: SUNDAY - DAY, endMs: SUNDAY }, history, 'UTC'), ROWS), undefined);
});

test('an hourly job compares 15:00 with earlier afternoons, not with the night', (t) => {
  const history = (now: number): HistoryRun[] =>
    Array.from({ length: 8 * 24 }, (_, i) => {
      const end = now - (i + 1) * HOUR;
      const hour = new Date(end - HOUR / 2).getUTCHours();
      // Eight days of hourly windows: 1,000 rows an hour in the afternoon, 50 at night.
      return past({ id: i + 1, windowStartMs: end - HOUR, windowEndMs: end, read: hour >= 12 && hour < 20 ? 1000 : 50, rejected: 0, startedAtMs: end, finishedAtMs: end + 1000, watermarkBeforeMs: end - HOUR, watermarkAfterMs: end });
    });
  const afternoon = Date.parse('2026-03-15T15:00:00Z');
  const window = { startMs: afternoon - HOUR, endMs: afternoon };
  const reference = comparableRuns(window, history(afternoon), 'UTC');
  // A week ago at this hour, an hour either side.
  t.is(reference.matched, 'week');
  t.true(reference.runs.length >= 3 && reference.runs.every((r) => r.read === 1000));
  t.like(checkRowsRead(facts(afternoon, 50, { window }), reference, ROWS), { check: 'low_volume', usual: 1000 });
  // Against every hour, 50 is what most hours have: the collapse would pass.
  t.is(checkRowsRead(facts(afternoon, 50, { window }), { runs: history(afternoon), matched: 'all' }, ROWS), undefined);
  const night = Date.parse('2026-03-15T03:00:00Z');
  const nightWindow = { startMs: night - HOUR, endMs: night };
  t.is(checkRowsRead(facts(night, 50, { window: nightWindow }), comparableRuns(nightWindow, history(night), 'UTC'), { ...ROWS, minRows: 10 }), undefined);
});

test('the lag at the start of a run: a missed night is a warning, a Monday after a weekday-only schedule is not', (t) => {
  const lag = { enabled: true, times: 2 };
  // Every night: a day and ten minutes behind at the start.
  const daily = Array.from({ length: 10 }, (_, i) => nightly(SUNDAY, i + 1, 100));
  const ref = comparableRuns({ startMs: SUNDAY - 3 * DAY, endMs: SUNDAY }, daily, 'UTC');
  const missed = checkWatermarkLag(facts(SUNDAY, 100, { window: { startMs: SUNDAY - 3 * DAY, endMs: SUNDAY }, watermarkBeforeMs: SUNDAY - 3 * DAY }), ref, lag);
  t.is(missed.length, 1);
  t.regex(missed[0]!.message, /^the watermark was 3 d behind when the run started, usually 24 h 10 min \(5 runs at this time of the week\); more than 2 d means runs were missed/);
  // Monday to Friday only: each Monday's run starts three days behind, and so did the last three Mondays.
  const monday = Date.parse('2026-03-16T03:00:00Z');
  const weekdays: HistoryRun[] = [];
  for (let d = 1; d <= 28; d++) {
    const end = monday - d * DAY;
    const weekday = new Date(end).getUTCDay(); // the day the run starts on
    if (weekday === 0 || weekday === 6) continue;
    const gap = weekday === 1 ? 3 * DAY : DAY;
    weekdays.push(past({ id: d, windowStartMs: end - gap, windowEndMs: end, read: 100, rejected: 0, startedAtMs: end, finishedAtMs: end + 60_000, watermarkBeforeMs: end - gap, watermarkAfterMs: end }));
  }
  const window = { startMs: monday - 3 * DAY, endMs: monday };
  const mondays = comparableRuns(window, weekdays, 'UTC');
  t.deepEqual(checkWatermarkLag(facts(monday, 100, { window, startedAtMs: monday, watermarkBeforeMs: monday - 3 * DAY, endedAtMs: monday + 60_000 }), mondays, lag), []);
  // A fixed limit needs no history.
  t.like(checkWatermarkLag(facts(SUNDAY, 0, { watermarkBeforeMs: SUNDAY - 3 * DAY }), undefined, { enabled: true, times: 2, maxMs: 2 * DAY })[0], { check: 'watermark_lag', threshold: 2 * 86_400 });
});

// ---- The verdict on real runs, each against a history written into the state store ---------

type Status = { jobs: Array<{ job: string; warnings: RunWarning[] }> };

const nightlyHistory = (days: number, read: (daysAgo: number) => number, extra: Partial<PastRun> = {}): PastRun[] =>
  Array.from({ length: days }, (_, i) => ({ daysAgo: i + 1, read: read(i + 1), ...extra }));

test('zero rows on a night that usually has 40,000: low_volume in the summary, the log, the history and status; exit 0 unless --fail-on names it', async (t) => {
  const project = await projectWithRows(t, []);
  const now = Date.now();
  await writeHistory(project, 'orders', now, nightlyHistory(10, () => 40_000), now - DAY);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const failOnOther = await project.cli(['run', 'orders', '--json', '--fail-on', 'high_volume,new_reject_reason']);
    t.is(failOnOther.code, 0, failOnOther.stderr);
    const summary = failOnOther.json<SummaryJson>();
    t.like(summary, { read: 0, status: 'succeeded', baseline: { runs: 10, comparable: 10, matched: 'all' } });
    t.is(summary.warnings.length, 1);
    t.like(summary.warnings[0], { check: 'low_volume', observed: 0 });
    // A fifth of 40,000 in a window a few seconds longer than a day.
    t.true(summary.warnings[0]!.threshold! >= 8000 && summary.warnings[0]!.threshold! < 8020);
    t.regex(summary.warnings[0]!.message, /^read 0 rows, usually about 40,0\d\d for a window this long \(the range of 10 runs\); fewer than 8,0\d\d is unusual$/);
    t.regex(failOnOther.stderr, /"level":"warn","msg":"read 0 rows, usually about/);

    // The next nights read nothing either: still a warning (the zero night before is not the usual).
    const nextNight = (): Promise<unknown> => project.db.stateSql(`update convey.watermarks set value = now() - interval '1 day'`);
    await nextNight();
    const failOn = await project.cli(['run', 'orders', '--fail-on', 'low_volume']);
    t.is(failOn.code, 5, failOn.stderr);
    t.regex(failOn.stdout, /warnings {6}1 \(compared with 11 of 11 earlier runs; --fail-on turns them into exit 5\)\n {4}low_volume {9}read 0 rows/);

    const stored = await project.db.stateSql(`select warnings from convey.runs where id = $1`, [summary.runId]);
    t.is(stored.rows[0].warnings[0].check, 'low_volume');
    const status = (await project.cli(['status', '--json'])).json<Status>();
    t.is(status.jobs[0]!.warnings[0]!.check, 'low_volume');
    t.regex((await project.cli(['status'])).stdout, /\norders .* low_volume\n$/);
    t.regex((await project.cli(['status', 'orders'])).stdout, /\n {2}warnings {3}low_volume: read 0 rows, usually about/);

    const bad = await project.cli(['run', 'orders', '--fail-on', 'low_volumes']);
    t.is(bad.code, 2);
    t.regex(bad.stderr, /--fail-on: \\"low_volumes\\" is not a check.*Did you mean \\"low_volume\\"/);
  });
});

/** 500 rows tonight after eight nights of about 100 (a join that fans out), sent to a receiver. */
async function withFannedOutNight(t: ExecutionContext, fn: (project: TestProject) => Promise<void>): Promise<void> {
  const now = Date.now();
  const project = await projectWithRows(t, rowsBetween(500, now - DAY + 60_000, now - 60_000));
  await writeHistory(project, 'orders', now, nightlyHistory(8, () => 100), now - DAY);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 500 }));
    await fn(project);
  });
}

test('five times the usual volume (a join that fans out) is high_volume', async (t) => {
  await withFannedOutNight(t, async (project) => {
    const run = await project.cli(['run', 'orders', '--json', '--fail-on', 'warnings']);
    t.is(run.code, 5, run.stderr);
    const summary = run.json<SummaryJson>();
    t.is(summary.sent, 500);
    t.deepEqual(summary.warnings.map((w) => w.check), ['high_volume']);
    t.like(summary.warnings[0], { observed: 500 });
  });
});

test('run --all takes --fail-on too: a warning it names is exit 5 for the combined run, below a failed job', async (t) => {
  await withFannedOutNight(t, async (project) => {
    const run = await project.cli(['run', '--all', '--json', '--fail-on', 'warnings']);
    t.is(run.code, 5, run.stderr);
    t.like(run.json<{ exitCode: number; jobs: Array<{ job: string; exitCode: number }> }>(), { exitCode: 5, jobs: [{ job: 'orders', exitCode: 5 }] });
  });
  t.is(worstExitCode([0, 5, 0]), 5);
  t.is(worstExitCode([5, 1]), 1, 'failed conversions are worse than a warning');
});

test("a quiet weekday is compared with the same weekday: no warning, where a busy day's count would be one", async (t) => {
  const now = Date.now();
  // Four weeks: this weekday had 20 rows each week, every other day 400.
  const quietToday = nightlyHistory(28, (d) => (d % 7 === 0 ? 20 : 400));
  const project = await projectWithRows(t, rowsBetween(20, now - DAY + 60_000, now - 60_000));
  await writeHistory(project, 'orders', now, quietToday, now - DAY);
  // The same 20 rows on a day of the week that usually has 400.
  const busyToday = nightlyHistory(28, (d) => (d % 7 === 0 ? 400 : 20));
  const other = await projectWithRows(t, rowsBetween(20, now - DAY + 60_000, now - 60_000));
  await writeHistory(other, 'orders', now, busyToday, now - DAY);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const settings = eventsJob(receiver, { alerts: { rowsRead: { minRows: 10 } } });
    project.writeJob('orders', CONVERSIONS_SQL, settings);
    other.writeJob('orders', CONVERSIONS_SQL, settings);
    const quiet = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(quiet.baseline, { matched: 'week', comparable: 4 });
    t.deepEqual(quiet.warnings, []);
    const busy = (await other.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(busy.baseline, { matched: 'week', comparable: 4 });
    t.deepEqual(busy.warnings.map((w) => w.check), ['low_volume']);
  });
});

test('a reject reason the job never had, and a rejected share far above its usual, are warnings; a known reason is not new', async (t) => {
  const now = Date.now();
  const good = rowsBetween(80, now - DAY + 60_000, now - 60_000);
  const badEvent = rowsBetween(19, now - DAY + 60_000, now - 60_000, 'e').map((r) => ({ ...r, event_id: 'x' }));
  const badRevenue = rowsBetween(1, now - DAY + 60_000, now - 60_000, 'm').map((r) => ({ ...r, revenue: '9.99' }));
  const project = await projectWithRows(t, [...good, ...badEvent, ...badRevenue]);
  const ids = await writeHistory(project, 'orders', now, nightlyHistory(6, () => 100, { rejected: 1 } as Partial<PastRun>), now - DAY);
  // bad_revenue was seen a week ago (and since resolved): not new.
  await project.db.stateSql(
    `insert into convey.rejects (job, run_id, conversion_id, reason_code, reason, row, created_at, last_seen_at, resolved_at)
     values ('orders', $1, 'old1', 'bad_revenue', 'revenue_cents "1.5" is not an integer', '{}', now() - interval '7 days', now() - interval '7 days', now() - interval '6 days')`,
    [ids[0]],
  );
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const run = await project.cli(['run', 'orders', '--json', '--fail-on', 'new_reject_reason']);
    t.is(run.code, 5, run.stderr);
    const summary = run.json<SummaryJson>();
    t.is(summary.rejected, 20);
    const byCheck = Object.fromEntries(summary.warnings.map((w) => [w.check, w]));
    t.deepEqual(Object.keys(byCheck).sort(), ['new_reject_reason', 'rejected_share']);
    t.deepEqual(byCheck.new_reject_reason!.reasons, ['bad_event_id']);
    t.regex(byCheck.new_reject_reason!.message, /bad_event_id \(19 rows: /);
    t.regex(byCheck.rejected_share!.message, /^rejected 20 of 100 rows \(20\.0%\), usually 1\.0% \(the range of 6 runs\); above 3\.0% is unusual$/);

    // The next night the same reasons are known: no new_reject_reason.
    await insertRows(project, rowsBetween(1, now - 30_000, now - 20_000, 'z').map((r) => ({ ...r, event_id: 'y' })));
    const again = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.false(again.warnings.some((w) => w.check === 'new_reject_reason'));
  });
});

test('a watermark that was days behind when the run started (runs missed) is watermark_lag; a young history gives no verdict but says so', async (t) => {
  const now = Date.now();
  const project = await projectWithRows(t, []);
  await writeHistory(project, 'orders', now, nightlyHistory(3, () => 0), now - 4 * DAY);
  const older = await projectWithRows(t, []);
  await writeHistory(older, 'orders', now, nightlyHistory(7, () => 0), now - 4 * DAY);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const young = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.deepEqual(young.warnings, []);
    t.like(young.baseline, { runs: 3, needed: 5 });

    older.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const run = await older.cli(['run', 'orders']);
    t.is(run.code, 0, run.stderr);
    t.regex(run.stdout, /watermark_lag {6}the watermark was 4 d behind when the run started, usually 24 h 10 min \(4 runs at this time of the week\); more than 2 d means runs were missed/);
  });
});

test('the state store places each past window in the job\'s time zone as the verdict does, across a change of daylight-saving time', async (t) => {
  const project = await projectWithRows(t, []);
  t.is((await project.cli(['migrate'])).code, 0);
  // Windows across the night Berlin moves to summer time (29 March 2026) and New York's (8 March).
  const windows = [['2026-03-28T12:00:00Z', '2026-03-29T12:00:00Z'], ['2026-03-07T23:30:00Z', '2026-03-08T23:30:00Z'], ['2026-07-01T00:00:00Z', '2026-07-01T01:00:00Z']];
  await project.db.stateSql(
    `insert into convey.runs (job, mode, status, started_at, finished_at, window_start, window_end, counts, convey_version, host, pid)
     select 'orders', 'run', 'succeeded', now() - interval '1 hour', now() - interval '1 hour', s, e, '{}', 'test', 'fixture', 0
       from unnest($1::timestamptz[], $2::timestamptz[]) as t(s, e)`,
    [windows.map((w) => w[0]), windows.map((w) => w[1])],
  );
  const { rows: [{ id }] } = await project.db.stateSql(`insert into convey.runs (job, mode, status, convey_version, host, pid) values ('orders', 'run', 'running', 'test', 'fixture', 0) returning id::int as id`);
  const store = await openStateStore(stateLocation(project.dir, project.env), 'test');
  try {
    for (const zone of ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata']) {
      const history = await successfulRunsBefore(store.db, 'orders', 'run', { runId: id, historyMs: 365 * DAY, limit: 10, timezone: zone });
      t.deepEqual(
        history.map((r) => r.midWeekMinute),
        history.map((r) => weekMinute((r.windowStartMs + r.windowEndMs) / 2, zone)),
        zone,
      );
    }
  } finally {
    await store.close();
  }
});
