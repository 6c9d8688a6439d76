import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import test from 'ava';
import { packageRoot } from '../src/package-root.ts';
import type { TestsDocument } from '../src/mapping-tests/tests-file.ts';
import type { ChangeReport } from '../src/review/review-change.ts';
import { guessMapping, mappingSql } from '../src/scaffold/guess-mapping.ts';
import { createTestProject } from './helpers/project.ts';

test('init, new, test and plan in a fresh folder, as a newcomer would', async (t) => {
  const project = await createTestProject();
  t.teardown(() => project.close());
  const env = { OPTIMIZELY_ACCOUNT_ID: '1234567' };
  const fresh = join(project.dir, 'fresh');

  const init = await project.cli(['init', 'fresh']);
  t.is(init.code, 0, init.stderr);
  for (const file of ['package.json', 'config/default.json', 'config/production.json', '.gitignore', '.github/workflows/convey-plan.yml', '.github/workflows/convey-nightly.yml', 'jobs/.gitkeep']) {
    t.true(existsSync(join(fresh, file)), file);
  }
  // convey is not on the registry, where `convey` is an unrelated package: the default is this copy.
  const dependency = (JSON.parse(readFileSync(join(fresh, 'package.json'), 'utf8')) as { dependencies: { convey: string } }).dependencies.convey;
  t.true(dependency.startsWith('file:'), dependency);
  t.is(resolve(fresh, dependency.slice('file:'.length)), packageRoot);
  t.regex(init.stdout, /not on the npm registry yet/);
  t.is(JSON.parse(readFileSync(join(fresh, 'config', 'default.json'), 'utf8')).$schema, '../node_modules/convey/schema/config.schema.json');
  t.regex(readFileSync(join(fresh, 'config', 'production.json'), 'utf8'), /\$\{WAREHOUSE_URL\}/);
  t.regex(readFileSync(join(fresh, '.gitignore'), 'utf8'), /^\.convey\/$/m);
  for (const secret of ['WAREHOUSE_URL', 'CONVEY_STATE_URL', 'OPTIMIZELY_ACCOUNT_ID', 'WAREHOUSE_READONLY_URL', 'CONVEY_STATE_READONLY_URL']) t.regex(init.stdout, new RegExp(secret));
  t.regex(init.stdout, /phone_orders table of 243 rows/);

  const created = await project.cli(['new', 'orders', '--from', 'phone_orders', '--project', 'fresh'], { env });
  t.is(created.code, 0, created.stderr);
  const sql = readFileSync(join(fresh, 'jobs', 'orders.sql'), 'utf8');
  t.regex(sql, /^ {2}t\.order_id as conversion_id, +-- TODO check: order_id \(text\)/m);
  t.regex(sql, /^ {2}t\.closed_at as occurred_at,/m);
  t.regex(sql, /^ {2}t\.optimizely_visitor_id as visitor_id,/m);
  t.regex(sql, /^ {2}round\(t\.total_cents\)::bigint as revenue_cents,/m);
  t.regex(sql, /^ {2}t\.bucketing as experiments +-- TODO check: bucketing \(json\)/m);
  t.regex(sql, /where t\.closed_at >= :window_start/);
  const settings = JSON.parse(readFileSync(join(fresh, 'jobs', 'orders.json'), 'utf8')) as { start: string; cursor: string; $schema: string };
  t.is(settings.$schema, '../node_modules/convey/schema/job.schema.json');
  t.true(Math.abs(Date.parse(settings.start) - Date.now()) < 10 * 60_000, `start is now, not the table's first row: ${settings.start}`);
  t.regex(created.stdout, /closed_at, the column the window is read on, starts no index/);
  t.regex(created.stdout, /read {10}\d+ rows/, 'the plan of the last day');
  t.regex(created.stdout, /convey backfill orders --from \d{4}-\d{2}-\d{2} --to \d{4}-\d{2}-\d{2}/);
  const tests = JSON.parse(readFileSync(join(fresh, 'jobs', 'orders.tests.json'), 'utf8')) as TestsDocument;
  t.is(tests.tests.length, 1);
  t.true((tests.tests[0]!.rows.phone_orders as Array<{ optimizely_visitor_id: string | null }>).every((r) => r.optimizely_visitor_id === null || r.optimizely_visitor_id.startsWith('visitor-')));
  t.true(tests.tests[0]!.expect!.conversions!.length > 0);

  // At a terminal each guess is asked: the revenue guess refused, the others kept as confirmed guesses.
  const questions: string[] = [];
  const ask = async (question: string): Promise<string> => {
    questions.push(question);
    return question.startsWith('revenue_cents') ? 'n' : '';
  };
  t.is((await project.cli(['new', 'asked', '--from', 'phone_orders', '--project', 'fresh'], { env, ask })).code, 0);
  const asked = readFileSync(join(fresh, 'jobs', 'asked.sql'), 'utf8');
  t.true(questions.some((q) => q.startsWith('conversion_id ← t.order_id')), questions.join('\n'));
  t.regex(asked, /^ {2}null as revenue_cents, +-- TODO: no column looks like revenue_cents/m);
  t.regex(asked, /^ {2}t\.order_id as conversion_id, +-- guess: order_id/m);
  t.notRegex(asked, /TODO check/);

  const tested = await project.cli(['test', 'orders', '--project', 'fresh'], { env });
  t.is(tested.code, 0, tested.stdout + tested.stderr);
  const planned = await project.cli(['plan', 'orders', '--project', 'fresh'], { env });
  t.is(planned.code, 0, planned.stderr);
  t.regex(planned.stdout, /1 test\(s\): 1 passed, 0 failed/);

  // The first pull request: revenue in cents doubled by mistake. The test and the compare both say so.
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: fresh, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  git('init', '-q');
  git('add', '.');
  git('commit', '-q', '-m', 'first job');
  writeFileSync(join(fresh, 'jobs', 'orders.sql'), sql.replace('round(t.total_cents)::bigint', 'round(t.total_cents * 2)::bigint'));
  // The job starts now: its next window is empty, so the compare is asked for the last two days.
  const day = (offset: number): string => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
  const compared = await project.cli(['plan', 'orders', '--project', 'fresh', '--compare', 'HEAD', '--from', day(-2), '--to', day(1), '--json'], { env });
  t.is(compared.code, 1, 'the failing test fails the check');
  const report = compared.json<ChangeReport & { tests: { failed: number; failures: string[] } }>();
  t.is(report.tests.failed, 1);
  t.regex(report.tests.failures[0]!, /revenue_cents: expected \d+, got \d+/);
  t.true(report.classes.changed.count > 0);
  t.deepEqual(Object.keys(report.classes.changed.fields!), ['revenue_cents']);
});

test('new guesses each column with what it assumed: dollars to cents, a zoneless time read as UTC, a load time as the cursor', (t) => {
  const guess = guessMapping([
    { name: 'id', type: 'bigint' },
    { name: 'purchased_at', type: 'timestamp without time zone' },
    { name: 'user_id', type: 'text' },
    { name: 'amount', type: 'numeric(12,2)' },
    { name: 'loaded_at', type: 'timestamp with time zone' },
    { name: 'notes', type: 'text' },
  ]);
  t.is(guess.cursor, 'loaded_at');
  t.is(guess.cursorColumn, 'loaded_at');
  t.deepEqual(guess.unused, ['notes']);
  const sql = mappingSql('shop.orders', guess, false);
  t.regex(sql, /t\.purchased_at as occurred_at, +-- TODO check: purchased_at \(timestamp without time zone\) has no time zone: read as UTC/);
  t.regex(sql, /round\(t\.amount \* 100\)::bigint as revenue_cents, +-- TODO check: amount \(numeric\(12,2\)\) read as dollars/);
  t.regex(sql, /t\.user_id as visitor_id, +-- TODO check: user_id: is this Optimizely's visitor id/);
  t.regex(sql, /null as event_id, +-- TODO: no column looks like event_id/);
  t.regex(sql, /t\.loaded_at as loaded_at +-- TODO check: loaded_at is when a row landed/);
  t.regex(sql, /-- Left out: notes\./);
  t.regex(sql, /where t\.loaded_at >= :window_start\n {2}and t\.loaded_at < {2}:window_end/);
});
