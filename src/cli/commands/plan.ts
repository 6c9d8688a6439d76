import { appendFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { didYouMean } from '../../config/did-you-mean.ts';
import type { JobConfig, Project } from '../../config/project.ts';
import { CHANGE_CLASSES, type ChangeClass } from '../../review/compare.ts';
import { compareMarkdown } from '../../review/markdown.ts';
import { DEFAULT_FAIL_ON, reviewChange } from '../../review/review-change.ts';
import type { StateStore } from '../../state/store.ts';
import { ExitCode } from '../exit-codes.ts';
import { formatTests, runJobTests, type TestsRun } from '../../mapping-tests/job-tests.ts';
import { loadTestsFile } from '../../mapping-tests/tests-file.ts';
import type { Destination } from '../../destinations/destination.ts';
import { ConveyError, toConveyError } from '../../errors.ts';
import { selectJobs } from '../../config/select.ts';
import { exitCodeForError } from '../exit-codes.ts';
import { worstExitCode } from '../run-many.ts';
import type { PlanOutcome } from '../../notify/notifier.ts';
import { notifyPlan } from '../../notify/notifications.ts';
import { describeJobMapping } from '../../pipeline/checked-batches.ts';
import { planWindow, type PlanResult } from '../../pipeline/plan-window.ts';
import { parseRange } from '../../pipeline/range.ts';
import { ndjsonTransport, type Transport } from '../../pipeline/transport.ts';
import { incrementalWindow } from '../../pipeline/window.ts';
import type { Source } from '../../source/open.ts';
import type { Window } from '../../time/window.ts';
import type { Queryable } from '../../state/db.ts';
import { readWatermark } from '../../state/sql/watermarks.ts';
import { systemClock } from '../../time/clock.ts';
import { nonNegativeInteger, projectFrom, resolveJob, selectionFrom, withProjectOption, withSelectionOptions, withSource, withStateReadOnly, type CommonFlags, type SelectionFlags } from '../context.ts';
import type { CliIO } from '../io.ts';

interface PlanFlags extends CommonFlags, SelectionFlags {
  from?: string;
  to?: string;
  tz?: string;
  out?: string;
  samples: number;
  compare?: string;
  window?: string;
  failOn?: ChangeClass[];
  checkDeterminism?: boolean;
  showValues?: boolean;
  markdown?: string;
}

export function planCommand(io: CliIO): Command {
  return withProjectOption(
    withSelectionOptions(new Command('plan'))
      .description('Show what a run (or a range) would do, without sending or changing anything: for pull requests.')
      .argument('[jobs...]', 'job names or globs; or --all, --select')
      .option('--from <date|time>', 'plan a range instead of the next run: first day or time (inclusive)')
      .option('--to <date|time>', 'end of the range (exclusive: --to 2026-04-01 stops at the end of March 31)')
      .option('--tz <zone>', "IANA zone in which dates are whole days (default: the job's timezone, else UTC)")
      .option('--out <file>', 'write every request it would send as NDJSON (method, url, body)')
      .option('--json', 'print { job, window, read, wouldSend, alreadySent, wouldReject, rejectsByReason, … }')
      .addOption(new Option('--samples <n>', 'sample requests to show').default(3).argParser(nonNegativeInteger('--samples')))
      .option('--compare <git-ref>', "what this change does against the job at a git ref (e.g. origin/main): each conversion added, removed, changed or re-keyed, and whether it was already sent; prints Markdown (or --json)")
      .option('--window <duration>', 'with --compare: compare only the last part of the window, e.g. P1D (the report says it is a sample)')
      .addOption(new Option('--fail-on <classes>', `with --compare: exit 1 when any of these classes has conversions (comma-separated: ${CHANGE_CLASSES.join(', ')}, or none)`).default(DEFAULT_FAIL_ON, 'rekeyed').argParser(parseClasses))
      .option('--check-determinism', 'with --compare: read this change twice over the last day of the window; a difference is an unstable mapping')
      .option('--show-values', 'with --compare: show visitor ids and attribute values (masked by default: the report is posted where many can read it)')
      .option('--markdown <file>', 'with --compare: also write the Markdown report to this file (e.g. "$GITHUB_STEP_SUMMARY")')
      .addHelpText('after', '\nExit code: 0 when the mapping works (rejected rows are listed, not fatal); 2 when it is broken\n(missing or unknown column, SQL error): plan can gate a pull request. With --compare: 1 when a class\nnamed by --fail-on has conversions (by default: re-keyed conversions, which would be sent twice).'),
  ).action(async (args: string[], flags: PlanFlags) => {
    const project = projectFrom(io, flags);
    const { many, selection } = selectionFrom(args, flags);
    if (many) return planMany(io, project, selectJobs(project, selection), flags);
    const name = selection.include[0]!;
    const { job, resolved } = resolveJob(project, name);
    // The job's own tests first: a mapping that fails them is reported before what it would send.
    const testsFile = loadTestsFile(project.dir, name);
    const tests = testsFile ? await runJobTests(project, job, resolved.destination, testsFile) : undefined;
    if (tests?.failed) io.setExitCode(ExitCode.FAILED);
    if (flags.compare) return compare(io, project, job, flags, tests);
    if (flags.window || flags.checkDeterminism || flags.showValues || flags.markdown) {
      throw new ConveyError('USAGE', '--window, --check-determinism, --show-values and --markdown go with --compare <git-ref>', { hint: `e.g. convey plan ${name} --compare origin/main --window P1D` });
    }
    const outcome = { job: job.name, sqlFile: job.sqlFile, projectDir: project.dir, destination: resolved.destination.label };
    const notify = (more: Pick<PlanOutcome, 'plan' | 'error'>): Promise<void> =>
      notifyPlan(job.notify, { ...outcome, ...more }, { clock: systemClock, logger: io.logger.child({ job: job.name }), stderr: io.stderr });
    const result = await withStateReadOnly(io, project, `convey plan ${name}`, (store) =>
      withSource(job, `convey plan ${name}`, async (source) => {
        const window = await planWindowOf(job, flags, store);
        const out = flags.out ? ndjsonTransport(resolve(io.cwd, flags.out)) : undefined;
        try {
          return await planJob({ state: store?.db, source, destination: resolved.destination, job, signal: io.signal, ...(out ? { out } : {}) }, window, flags.samples);
        } finally {
          await out?.close();
        }
      }),
    ).catch(async (error: unknown) => {
      const e = toConveyError(error);
      await notify({ error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
      throw error;
    });
    io.stdout.write(flags.json ? JSON.stringify({ ...result, ...(tests ? { tests: testsSummary(tests) } : {}) }) + '\n' : (tests ? formatTests(tests) + '\n' : '') + formatPlan(result, resolved.destination));
    await notify({ plan: result });
  });
}

/**
 * Several jobs: each planned on its own (the same plan as for one job, without its tests or a
 * compare); a broken one is reported and the others are still planned; the worst exit code.
 */
async function planMany(io: CliIO, project: Project, names: string[], flags: PlanFlags): Promise<void> {
  if (flags.compare || flags.window || flags.checkDeterminism || flags.showValues || flags.markdown) {
    throw new ConveyError('USAGE', '--compare and its options take one job', { hint: 'Run convey plan <job> --compare <git-ref> for each job changed.' });
  }
  const jobs = await withStateReadOnly(io, project, 'convey plan', async (store) => {
    const planned: Array<{ job: string; exitCode: number; plan?: PlanResult; error?: { code: string; message: string }; text: string }> = [];
    for (const name of names) {
      try {
        const { job, resolved } = resolveJob(project, name);
        const result = await withSource(job, `convey plan ${name}`, async (source) =>
          planJob({ state: store?.db, source, destination: resolved.destination, job, signal: io.signal }, await planWindowOf(job, flags, store), flags.samples),
        );
        planned.push({ job: name, exitCode: 0, plan: result, text: formatPlan(result, resolved.destination) });
      } catch (caught) {
        const error = toConveyError(caught);
        if (error.code === 'INTERRUPTED') throw error;
        io.logger.error(error.message, { job: name, code: error.code, ...(error.hint ? { hint: error.hint } : {}) });
        planned.push({ job: name, exitCode: exitCodeForError(error.code), error: { code: error.code, message: error.message }, text: `convey plan ${name}: ${error.code}: ${error.message}\n` });
      }
    }
    return planned;
  });
  const exitCode = worstExitCode(jobs.map((j) => j.exitCode));
  io.stdout.write(flags.json ? JSON.stringify({ exitCode, jobs: jobs.map(({ text: _text, ...rest }) => rest) }) + '\n' : jobs.map((j) => j.text).join('\n'));
  io.setExitCode(exitCode);
}

/** The range asked for, else the window the next incremental run would read. */
async function planWindowOf(job: JobConfig, flags: PlanFlags, store: StateStore | undefined): Promise<Window> {
  if (flags.from || flags.to) return parseRange(flags.from, flags.to, flags.tz ?? job.timezone);
  return incrementalWindow(job, store ? await readWatermark(store.db, job.name) : undefined, systemClock.now());
}

/** What plan reports of the job's tests: counts, and the failures line by line. */
function testsSummary(run: TestsRun): { passed: number; failed: number; failures: string[] } {
  return { passed: run.passed, failed: run.failed, failures: run.outcomes.flatMap((o) => o.failures.map((f) => `${o.name}: ${f}`)) };
}

async function compare(io: CliIO, project: Project, job: JobConfig, flags: PlanFlags, tests: TestsRun | undefined): Promise<void> {
  const report = await withStateReadOnly(io, project, `convey plan ${job.name} --compare`, (store) =>
    withSource(job, `convey plan ${job.name} --compare`, async (source) =>
      reviewChange({ project, source, state: store?.db, signal: io.signal, clock: systemClock }, job, {
        ref: flags.compare!,
        window: await planWindowOf(job, flags, store),
        ...(flags.window ? { sample: flags.window } : {}),
        failOn: flags.failOn ?? DEFAULT_FAIL_ON,
        mask: !flags.showValues,
        checkDeterminism: Boolean(flags.checkDeterminism),
      }),
    ),
  );
  const markdown = compareMarkdown(report, tests ? { tests: testsSummary(tests) } : {});
  if (flags.markdown) appendFileSync(resolve(io.cwd, flags.markdown), markdown + '\n');
  io.stdout.write(flags.json ? JSON.stringify({ ...report, ...(tests ? { tests: testsSummary(tests) } : {}) }) + '\n' : markdown);
  if (report.failedOn.length) io.setExitCode(ExitCode.FAILED);
}

function parseClasses(text: string): ChangeClass[] {
  if (text.trim() === 'none') return [];
  const list = text.split(',').map((c) => c.trim()).filter(Boolean);
  for (const c of list) {
    if (!(CHANGE_CLASSES as readonly string[]).includes(c)) {
      const guess = didYouMean(c, [...CHANGE_CLASSES]);
      throw new ConveyError('USAGE', `--fail-on: "${c}" is not a class${guess ? ` (did you mean "${guess}"?)` : ''}`, { hint: `Classes: ${CHANGE_CLASSES.join(', ')}; or none.` });
    }
  }
  return list as ChangeClass[];
}

/** Checks the mapping the way a run does, then counts what the window would do. */
export async function planJob(
  deps: { state: Queryable | undefined; source: Source; destination: Destination; job: JobConfig; signal: AbortSignal; out?: Transport },
  window: Window,
  samples: number,
): Promise<PlanResult> {
  const mapping = await describeJobMapping(deps.source, deps.job, deps.destination, window);
  const result = await planWindow({ ...deps, mapping, clock: systemClock }, window, { samples });
  // A signal stops the reading early and quietly: the counts so far are not the plan, and a
  // pull-request check or a reviewer must not take them for it.
  if (deps.signal.aborted) {
    throw new ConveyError('INTERRUPTED', `stopped by ${String(deps.signal.reason)} before the window was read to its end: no plan`, {
      hint: `Run convey plan ${deps.job.name} again.`,
    });
  }
  return result;
}

export function formatPlan(p: PlanResult, destination: Destination): string {
  const n = (v: number): string => v.toLocaleString('en-US');
  const lines = [
    `convey plan ${p.job}: ${destination.label}`,
    `  window        ${p.window.start} → ${p.window.end}`,
    `  read          ${n(p.read)} rows`,
    `  would send    ${n(p.wouldSend)} in ${n(p.requests)} request(s)`,
    `  already sent  ${n(p.alreadySent)}`,
    `  would reject  ${n(p.wouldReject)}`,
  ];
  for (const [code, count] of Object.entries(p.rejectsByReason).sort((a, b) => b[1] - a[1])) {
    lines.push(`    ${code}: ${n(count)}`);
    for (const example of p.rejectExamples[code] ?? []) lines.push(`      ${example.conversionId ?? '(no conversion_id)'}: ${example.reason}`);
  }
  if (p.skipped) lines.push(`  skipped       ${n(p.skipped)}   (failed or pending: the run's retry step sends them)`);
  const open = p.openFromEarlierRuns;
  if (open.failed || open.deferred || open.inDoubt) {
    lines.push(`  sent first    ${n(open.failed)} failed, ${n(open.deferred)} deferred, ${n(open.inDoubt)} in doubt from earlier runs`);
  }
  if (p.samples.length) {
    lines.push('', 'Sample requests:');
    for (const request of p.samples) {
      lines.push(`  ${request.method} ${request.url}`);
      if (request.body) lines.push(indent(JSON.stringify(JSON.parse(request.body), null, 2).split('\n').slice(0, 40).join('\n'), 4));
    }
  }
  return lines.join('\n') + '\n';
}

const indent = (text: string, by: number): string => text.replace(/^/gm, ' '.repeat(by));
