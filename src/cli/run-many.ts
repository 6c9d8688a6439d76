import type { Project } from '../config/project.ts';
import { toConveyError } from '../errors.ts';
import { reportCommandFailure } from '../notify/command-failure.ts';
import type { RunSummary } from '../pipeline/run-job.ts';
import type { StateStore } from '../state/store.ts';
import type { WarningCheck } from '../verdict/warning.ts';
import { resolveJob, withState } from './context.ts';
import { executeOnStore, type RunBody } from './execute.ts';
import { ExitCode, exitCodeForError, exitCodeForRun, exitCodeForStatus } from './exit-codes.ts';
import type { CliIO } from './io.ts';
import { formatDuration, formatSummary } from './output.ts';

/** What became of one selected job. */
export interface JobOutcome {
  job: string;
  /** succeeded | failed | interrupted (a run's status); held: another runner has it (skipped); error: it could not run; not-started: stopped before its turn. */
  status: RunSummary['status'] | 'held' | 'error' | 'not-started';
  /** The exit code this job alone would have given (0 when held). */
  exitCode: number;
  summary?: RunSummary;
  error?: { code: string; message: string; hint?: string };
}

/**
 * The worst of several exit codes, with the meanings they have for one job. A stop by a signal
 * wins (the rest did not run); then a bug (70), the state store (4), the source (3), a broken
 * job (2), failed conversions (1), a warning --fail-on names (5). A job held by another runner
 * counts as done (0): that runner is doing it.
 */
export function worstExitCode(codes: readonly number[]): number {
  const signal = codes.find((c) => c === ExitCode.SIGINT || c === ExitCode.SIGTERM);
  if (signal !== undefined) return signal;
  const order: number[] = [ExitCode.OK, ExitCode.WARNINGS, ExitCode.FAILED, ExitCode.CONFIG, ExitCode.SOURCE, ExitCode.STATE, ExitCode.INTERNAL];
  return codes.reduce((worst, code) => (order.indexOf(code) > order.indexOf(worst) ? code : worst), ExitCode.OK);
}

/**
 * `convey run --all` (or a selection): every selected job in one process, up to `parallel` at
 * once, on one state store. Each job gets what it gets on its own (its source, its delivery
 * engine); one job's broken mapping or failing source never stops the others; a job another
 * runner holds is skipped and reported. One combined summary and one exit code.
 */
export async function runMany(
  io: CliIO,
  project: Project,
  names: readonly string[],
  options: { json?: boolean; parallel: number; command: string; failOn?: ReadonlySet<WarningCheck> | undefined },
  body: (name: string) => RunBody,
): Promise<JobOutcome[]> {
  const outcomes = await withState(io, project, options.command, (store) => eachJob(io, project, store, names, options, body));
  if (options.json) io.stdout.write(JSON.stringify({ exitCode: worstExitCode(outcomes.map((o) => o.exitCode)), jobs: outcomes }) + '\n');
  else io.stdout.write(formatOutcomes(outcomes));
  io.setExitCode(worstExitCode(outcomes.map((o) => o.exitCode)));
  return outcomes;
}

async function eachJob(
  io: CliIO,
  project: Project,
  store: StateStore,
  names: readonly string[],
  options: { json?: boolean; parallel: number; command: string; failOn?: ReadonlySet<WarningCheck> | undefined },
  body: (name: string) => RunBody,
): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = new Array(names.length);
  const turns = new Map<string, Promise<unknown>>();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < names.length; i = next++) {
      const job = names[i]!;
      outcomes[i] = io.signal.aborted ? { job, status: 'not-started', exitCode: ExitCode.OK } : await runOne(io, project, store, job, options, body(job), turns);
      // Each job's own summary as soon as it is known; the table at the end says the rest.
      if (!options.json && outcomes[i]!.summary) io.stdout.write(formatSummary(outcomes[i]!.summary!) + '\n');
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.parallel, names.length) }, worker));
  const stopped = outcomes.find((o) => o.status === 'interrupted' || o.status === 'not-started');
  if (stopped) {
    const code = exitCodeForStatus('interrupted', io.signal.reason as NodeJS.Signals | undefined);
    for (const o of outcomes) if (o.status === 'not-started') o.exitCode = code;
  }
  return outcomes;
}

async function runOne(
  io: CliIO,
  project: Project,
  store: StateStore,
  job: string,
  options: { json?: boolean; parallel: number; command: string; failOn?: ReadonlySet<WarningCheck> | undefined },
  body: RunBody,
  turns: Map<string, Promise<unknown>>,
): Promise<JobOutcome> {
  let done = (): void => undefined;
  try {
    const target = resolveJob(project, job);
    // An embedded source serves one connection: jobs reading the same one take turns.
    const folder = target.job.source.client === 'pglite' ? target.job.source.dataDir! : undefined;
    if (folder) {
      const before = turns.get(folder) ?? Promise.resolve();
      const mine = new Promise<void>((resolve) => (done = resolve));
      turns.set(folder, before.then(() => mine));
      await before;
    }
    const summary = await executeOnStore(io, store, target, { command: `${options.command} (${job})`, mode: 'run', needsSource: true, progressLabel: `run ${job}`, progress: options.parallel === 1 && !options.json, failOn: options.failOn }, body);
    return { job, status: summary.status, exitCode: exitCodeForRun(summary, io.signal.reason as NodeJS.Signals | undefined, options.failOn), summary };
  } catch (caught) {
    const error = toConveyError(caught);
    const described = { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
    if (error.code === 'JOB_LOCKED') {
      io.logger.info(`skipped: ${error.message}`, { job });
      return { job, status: 'held', exitCode: ExitCode.OK, error: described };
    }
    io.logger.error(error.message, { job, code: error.code, ...(error.hint ? { hint: error.hint } : {}) });
    const exitCode = error.code === 'INTERRUPTED' ? exitCodeForStatus('interrupted', io.signal.reason as NodeJS.Signals | undefined) : exitCodeForError(error.code);
    reportCommandFailure(caught, error, exitCode, { env: io.env, stderr: io.stderr, warn: (message) => io.logger.warn(message, { job }) }, job);
    return { job, status: 'error', exitCode, error: described };
  } finally {
    done();
  }
}

/** The table at the end of a combined run: one line per job, then the exit code and why. */
export function formatOutcomes(outcomes: readonly JobOutcome[]): string {
  const width = Math.max(...outcomes.map((o) => o.job.length), 3);
  const lines = outcomes.map((o) => {
    const s = o.summary;
    const what = s
      ? `sent ${s.sent}, already ${s.alreadySent}, rejected ${s.rejected}, failed ${s.failed}${s.deferred ? `, deferred ${s.deferred}` : ''} in ${formatDuration(s.durationMs)}`
      : o.status === 'held'
        ? `skipped: ${o.error!.message.replace(/; this run sent nothing$/, '')}`
        : o.status === 'not-started'
          ? 'not started (stopped by a signal)'
          : `${o.error!.code}: ${o.error!.message.split('\n')[0]}`;
    return `  ${o.job.padEnd(width)}  ${o.status.padEnd(11)}  ${what}  (exit ${o.exitCode})`;
  });
  const counts = new Map<string, number>();
  for (const o of outcomes) counts.set(o.status, (counts.get(o.status) ?? 0) + 1);
  const tally = [...counts].map(([status, n]) => `${n} ${status}`).join(', ');
  return [`convey: ${outcomes.length} job(s): ${tally}; exit ${worstExitCode(outcomes.map((o) => o.exitCode))}`, ...lines].join('\n') + '\n';
}
