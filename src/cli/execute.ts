import type { JobConfig, Project } from '../config/project.ts';
import type { ResolvedDestination } from '../destinations/index.ts';
import type { RunJobDeps, RunSummary } from '../pipeline/run-job.ts';
import { newSpoolStats } from '../source/spool.ts';
import { systemClock } from '../time/clock.ts';
import { createTransport, withSource, withState } from './context.ts';
import { exitCodeForStatus } from './exit-codes.ts';
import type { CliIO } from './io.ts';
import { formatSummary, logFailures, ProgressLine } from './output.ts';

/**
 * What run, backfill, retry and rejects --replay share: open the state store (migrating it), the
 * source (unless the command reads none), the transport; run; print the summary (human, or one
 * JSON object with --json); set the exit code from how the run ended.
 */
export async function executeCommand(
  io: CliIO,
  project: Project,
  target: { job: JobConfig; resolved: ResolvedDestination },
  options: { json?: boolean; command: string; needsSource: boolean; progressLabel: string },
  run: (deps: RunJobDeps, progress: ProgressLine | undefined) => Promise<RunSummary>,
): Promise<RunSummary> {
  const { job, resolved } = target;
  return withState(io, project, options.command, async (store) => {
    const go = async (source: RunJobDeps['source']): Promise<RunSummary> => {
      const transport = createTransport(io, job, resolved, store.db.lockLost);
      // On a terminal only: a live line, with an ETA once the source has handed over the window.
      const readStats = newSpoolStats();
      const progress = io.isTTY && !options.json ? new ProgressLine(io.stderr, options.progressLabel, readStats) : undefined;
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
            describeHolder: store.describeHolder,
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
      io.stdout.write(options.json ? JSON.stringify(summary) + '\n' : formatSummary(summary));
      logFailures(io.logger.child({ job: job.name }), summary);
      io.setExitCode(exitCodeForStatus(summary.status, io.signal.reason as NodeJS.Signals | undefined));
      return summary;
    };
    return options.needsSource ? withSource(job, options.command, go) : go(undefined);
  });
}
