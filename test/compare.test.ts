import { execFileSync } from 'node:child_process';
import test from 'ava';
import { determinismWarnings } from '../src/review/determinism.ts';
import { compareMarkdown, commentMarker } from '../src/review/markdown.ts';
import type { ChangeReport } from '../src/review/review-change.ts';
import { SortedSpill, withSpillDir } from '../src/review/spill.ts';
import { classicJob, CONVERSIONS_SQL, eventsJob, insertRows, projectWithRows, rows, withReceiver } from './helpers/fixtures.ts';
import type { TestProject } from './helpers/project.ts';

/** The project folder as a git repository with the jobs committed: what `--compare HEAD` reads. */
function commitJobs(project: TestProject, message: string): void {
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args], { cwd: project.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    git('rev-parse', '--git-dir');
  } catch {
    git('init', '-q');
  }
  git('add', 'jobs');
  git('commit', '-q', '--allow-empty', '-m', message);
}

const RANGE = ['--from', '2026-03-01', '--to', '2026-03-02'];

/** The mapping with edits applied to its SELECT list and a filter. */
const mapping = (select: { id?: string; revenue?: string }, where = ''): string =>
  CONVERSIONS_SQL.replace('select id as conversion_id', `select ${select.id ?? 'id'} as conversion_id`)
    .replace('revenue as revenue_cents', `${select.revenue ?? 'revenue'} as revenue_cents`)
    .replace('where at >= :window_start', `where ${where || 'true'} and at >= :window_start`);

test('a compare puts each conversion in one class, by what reaches Optimizely, and a re-key fails the check', async (t) => {
  const project = await projectWithRows(t, rows(10));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const settings = eventsJob(receiver);
    // c0001…c0010 are sent by the job as it first was; c0011…c0020 arrive later, not yet sent.
    project.writeJob('orders', CONVERSIONS_SQL, settings);
    t.is((await project.cli(['run', 'orders'])).code, 0);
    await insertRows(project, rows(10, '2026-03-01T01:00:00Z', 'd').map((r, i) => ({ ...r, id: `c${String(i + 11).padStart(4, '0')}` })));
    // main: c0003 and c0013 left out (c0003 was sent by an earlier version of the job).
    project.writeJob('orders', mapping({}, "id not in ('c0003', 'c0013')"), settings);
    commitJobs(project, 'main');
    // This change: c0003 and c0013 back; c0002, c0012 dropped; revenue doubled for c0001 (sent)
    // and c0011 (not sent); c0004 (sent) and c0014 (not sent) under a new id; c0015 revenue not whole cents.
    project.writeJob(
      'orders',
      mapping(
        {
          id: "case when id in ('c0004', 'c0014') then id || '-x' else id end",
          revenue: "case when id in ('c0001', 'c0011') then revenue * 2 when id = 'c0015' then revenue + 0.5 else revenue end",
        },
        "id not in ('c0002', 'c0012')",
      ),
      settings,
    );

    const compared = await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE, '--json']);
    t.is(compared.code, 1, `a re-key of a sent conversion fails by default\n${compared.stderr}`);
    const r = compared.json<ChangeReport>();
    const counts = Object.fromEntries(Object.entries(r.classes).map(([c, tally]) => [c, tally.count]));
    t.deepEqual(counts, { rekeyed: 1, 'changed-sent': 1, 'removed-sent': 1, removed: 3, changed: 1, added: 2, 'added-sent': 1, unchanged: 11 });
    t.like(r.classes.rekeyed.examples[0], { conversionId: 'c0004-x', was: 'c0004' });
    t.like(r.classes['changed-sent'], { fields: { revenue_cents: { count: 1, examples: [{ conversionId: 'c0001', before: '100', after: '200' }] } } });
    t.like(r.classes.changed, { fields: { revenue_cents: { count: 1, examples: [{ conversionId: 'c0011', before: '100', after: '200' }] } } });
    t.deepEqual(r.classes.removed.examples.map((e) => e.conversionId).sort(), ['c0012', 'c0014', 'c0015']);
    t.deepEqual(r.classes.added.examples.map((e) => e.conversionId).sort(), ['c0013', 'c0014-x']);
    t.is(r.classes['added-sent'].examples[0]!.conversionId, 'c0003');
    t.is(r.classes['removed-sent'].examples[0]!.conversionId, 'c0002');
    t.deepEqual(r.rejects.map((x) => [x.reason, x.main, x.change]), [['bad_revenue', 0, 1]]);
    t.deepEqual(r.failedOn, ['rekeyed']);
    t.is(r.reads, 2, 'the SQL changed: each side read once');
    t.false(JSON.stringify(r).includes('"v4"'), 'visitor ids are masked by default');

    // --fail-on replaces the default; none never fails.
    t.is((await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE, '--fail-on', 'none', '--json'])).code, 0);
    t.is((await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE, '--fail-on', 'changed-sent', '--json'])).code, 1);
    t.is((await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE, '--fail-on', 'chnaged'])).code, 2);

    // The Markdown: verdict first, the worst class first, masked, and cut to fit with a note.
    const md = await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE, '--show-values']);
    t.true(md.stdout.startsWith(commentMarker('orders')));
    t.regex(md.stdout.split('\n')[1]!, /❌ 1 conversions would be sent twice \(re-keyed\)/);
    t.true(md.stdout.indexOf('Re-keyed') < md.stdout.indexOf('already sent: no effect in Optimizely'));
    t.regex(md.stdout, /\| `c0004-x` \| `c0004` \| `111` \| `v4` \|/, '--show-values shows the visitor id');
    const short = compareMarkdown(r, { limit: 1500 });
    t.true(short.length <= 1500, `${short.length} characters`);
    t.regex(short, /Report cut to fit a comment/);
    t.regex(short, /Re-keyed/, 'the table of classes is always there');
  });
});

test('a settings-only change is compared from one read of the rows', async (t) => {
  const project = await projectWithRows(t, rows(30));
  await withReceiver({ protocol: 'classic' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver));
    commitJobs(project, 'main');
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver, { destination: { type: 'optimizely-classic', projectId: '1234567', endpoint: receiver.url, revenueGoalId: '42' } }));
    const compared = await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE, '--json']);
    t.is(compared.code, 0, compared.stderr);
    const r = compared.json<ChangeReport>();
    t.is(r.reads, 1);
    t.is(r.change.read, 30);
    t.is(r.main.read, 30);
    t.is(r.classes.changed.count, 30, 'every classic URL gains the revenue goal');
    t.deepEqual(Object.keys(r.classes.changed.fields ?? {}), ['(settings)']);
    t.deepEqual(r.settings, [{ key: 'destination.revenueGoalId', before: null, after: '42' }]);
  });
});

test('a job missing at the ref is new: everything is added; clock and random functions are warned about and caught twice read', async (t) => {
  const project = await projectWithRows(t, rows(12));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('other', CONVERSIONS_SQL, eventsJob(receiver));
    commitJobs(project, 'main without orders');
    project.writeJob('orders', mapping({ revenue: 'revenue + floor(random() * 1000)' }), eventsJob(receiver));
    const compared = await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE, '--check-determinism', '--json']);
    t.is(compared.code, 0, compared.stderr);
    const r = compared.json<ChangeReport>();
    t.false(r.base.exists);
    t.is(r.classes.added.count, 12);
    t.is(r.reads, 1);
    t.true(r.warnings.some((w) => w.includes('random() is random')), r.warnings.join('\n'));
    t.true(r.unstable!.differing > 0);
    t.deepEqual(r.unstable!.fields, ['revenue_cents']);

    // A broken mapping is exit 2, as for plan; an unknown ref is a usage error.
    project.writeJob('orders', CONVERSIONS_SQL.replace('from conversions', 'from conversionz'), eventsJob(receiver));
    t.is((await project.cli(['plan', 'orders', '--compare', 'HEAD', ...RANGE])).code, 2);
    const unknown = await project.cli(['plan', 'other', '--compare', 'no-such-branch', ...RANGE]);
    t.is(unknown.code, 2);
    t.regex(unknown.stderr, /no such commit/);
  });
});

test('the sorted spill merges runs on disk in key order, ties in reading order, over several merge passes', async (t) => {
  await withSpillDir(async (dir) => {
    const spill = new SortedSpill<{ key: string; seq: number }>(dir, 'test', 1);
    const keys = Array.from({ length: 150 }, (_, i) => `k${(i * 37) % 100}`);
    for (const [seq, key] of keys.entries()) await spill.add({ key, seq });
    const out: Array<{ key: string; seq: number }> = [];
    for await (const r of spill.sorted()) out.push(r);
    const expected = keys.map((key, seq) => ({ key, seq })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq));
    t.deepEqual(out, expected);
  });
});

test('the sorted spill keeps every record of runs and merge passes larger than one write', async (t) => {
  await withSpillDir(async (dir) => {
    // 36 runs of 1,100 (more than are merged at once, each several writes long), ties included.
    const spill = new SortedSpill<{ key: string; seq: number }>(dir, 'big', 1100);
    const n = 36 * 1100;
    for (let seq = 0; seq < n; seq++) await spill.add({ key: `k${String((seq * 7919) % 20011).padStart(5, '0')}`, seq });
    let count = 0;
    let previous: { key: string; seq: number } | undefined;
    let ordered = true;
    for await (const r of spill.sorted()) {
      if (previous && (previous.key > r.key || (previous.key === r.key && previous.seq >= r.seq))) ordered = false;
      previous = r;
      count++;
    }
    t.is(count, n);
    t.true(ordered);
  });
});

test('the SQL is read for what makes two reads differ, outside comments and strings', (t) => {
  const warn = (sql: string): string[] => determinismWarnings(sql, 'jobs/x.sql');
  t.deepEqual(warn("select id, 'now()' as _note from t -- random() here is a comment\nwhere x order by id limit 10"), []);
  t.regex(warn('select id, now() as occurred_at from t').join(), /now\(\) reads the clock/);
  t.regex(warn('select current_timestamp as occurred_at from t').join(), /current_timestamp reads the clock/);
  t.regex(warn('select row_number() over (partition by visitor) as conversion_id from t').join(), /row_number\(\) over \(…\) has no order by/);
  t.regex(warn('select row_number() over (partition by visitor order by created_at) as conversion_id from t').join(), /numbers ties in any order unless that order is unique/);
  t.deepEqual(warn('select row_number() over (partition by visitor order by created_at, order_id) as conversion_id from t'), []);
  t.regex(warn('select * from (select * from t limit 100) s order by id').join(), /limit without order by/);
});
