import type { JobConfig, Project } from '../config/project.ts';
import type { ResolvedDestination } from '../destinations/index.ts';
import type { RunJobDeps, RunSummary } from '../pipeline/run-job.ts';
import { markReported } from '../notify/command-failure.ts';
import { runNotifications } from '../notify/notifications.ts';
import { newSpoolStats } from '../source/spool.ts';
import type { RunMode } from '../state/sql/runs.ts';
import type { StateStore } from '../state/store.ts';
import type { WarningCheck } from '../verdict/warning.ts';
import { systemClock } from '../time/clock.ts';
import { createTransport, runnerHost, withSource, withState } from './context.ts';
import { exitCodeForRun, exitCodeOf } from './exit-codes.ts';
import type { CliIO } from './io.ts';
import { formatSummary, logFailures, ProgressLine } from './output.ts';

export interface ExecuteOptions {
  json?: boolean;
  command: string;
  needsSource: boolean;
  progressLabel: string;
  /** A live progress line on a terminal (off when several jobs run side by side). */
  progress?: boolean;
  /** The kind of run, for notifications (their memory of a job's state is per mode). */
  mode: RunMode;
  /** The verdict's checks that turn a successful run's exit code into 5 (--fail-on). */
  failOn?: ReadonlySet<WarningCheck> | undefined;
}

export type RunBody = (deps: RunJobDeps, progress: ProgressLine | undefined) => Promise<RunSummary>;

/**
 * What run, backfill, retry and rejects --replay share: open the state store (migrating it), the
 * source (unless the command reads none), the transport; run; print the summary (human, or one
 * JSON object with --json); set the exit code from how the run ended (warnings count only with
 * --fail-on); tell the configured channels (src/notify/), whose failures are only logged.
 */
export async function executeCommand(
  io: CliIO,
  project: Project,
  target: { job: JobConfig; resolved: ResolvedDestination },
  options: ExecuteOptions,
  run: RunBody,
): Promise<RunSummary> {
  return withState(io, project, options.command, async (store) => {
    const summary = await executeOnStore(io, store, target, options, run);
    io.stdout.write(options.json ? JSON.stringify(summary) + '\n' : formatSummary(summary));
    io.setExitCode(exitCodeForRun(summary, io.signal.reason as NodeJS.Signals | undefined, options.failOn));
    return summary;
  });
}

/**
 * One job's run on an open state store: its source (unless the command reads none), its transport,
 * the run, the delivery figures, the failures logged. Every run of every command goes through
 * here, one job at a time (`run <job>`) or many (`run --all`, cli/run-many.ts): what follows each
 * finished run belongs here.
 */
export async function executeOnStore(
  io: CliIO,
  store: StateStore,
  target: { job: JobConfig; resolved: ResolvedDestination },
  options: ExecuteOptions,
  run: RunBody,
): Promise<RunSummary> {
  const { job, resolved } = target;
  const signal = (): NodeJS.Signals | undefined => io.signal.reason as NodeJS.Signals | undefined;
  const notifications = runNotifications(job.notify, { job: job.name, mode: options.mode, command: options.command }, { clock: systemClock, logger: io.logger.child({ job: job.name }), stderr: io.stderr });
  const go = async (source: RunJobDeps['source']): Promise<RunSummary> => {
    const transport = await createTransport(io, job, resolved, store);
    // On a terminal only: a live line, with an ETA once the source has handed over the window.
    const readStats = newSpoolStats();
    const progress = io.isTTY && !options.json && options.progress !== false ? new ProgressLine(io.stderr, options.progressLabel, readStats) : undefined;
    let summary: RunSummary;
    try {
      summary = await run(
        {
          db: store.db,
          ...(source ? { source, readStats } : {}),
          destination: resolved.destination,
          transport,
          job,
          clock: systemClock,
          logger: io.logger.child({ job: job.name }),
          signal: io.signal,
          host: runnerHost(io),
          describeHolder: store.describeHolder,
          onStarted: (runId) => notifications.started(runId),
          ...(progress ? { onProgress: (counts) => progress.update(counts) } : {}),
        },
        progress,
      );
      const stats = transport.stats?.();
      if (stats) summary.delivery = stats;
    } finally {
      progress?.done();
      await transport.close();
    }
    logFailures(io.logger.child({ job: job.name }), summary);
    await notifications.finished({ summary, exitCode: exitCodeForRun(summary, signal(), options.failOn) }, store.db);
    return summary;
  };
  return (options.needsSource ? withSource(job, options.command, go) : go(undefined)).catch(async (error: unknown) => {
    await notifications.finished({ error, exitCode: exitCodeOf(error, signal()) }, store.db);
    markReported(error);
    throw error;
  });
}
