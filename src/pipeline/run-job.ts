import type { JobConfig } from '../config/project.ts';
import type { Destination } from '../destinations/destination.ts';
import { ConveyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Source } from '../source/connect.ts';
import { describeMapping, type Window } from '../source/pages.ts';
import type { Db } from '../state/db.ts';
import { countOpenRejects } from '../state/sql/rejects.ts';
import { finishRun, updateRunWindow, type RunMode, type RunStatus } from '../state/sql/runs.ts';
import { readWatermark } from '../state/sql/watermarks.ts';
import type { Clock } from '../time/clock.ts';
import type { Instant } from '../time/instant.ts';
import { mappingOf } from './checked-batches.ts';
import { zeroCounts, type RunCounts } from './counts.ts';
import { holdJob } from './job-lock.ts';
import { sendOpenConversions } from './send-open.ts';
import { sendWindow } from './send-window.ts';
import type { Transport } from './transport.ts';
import { incrementalWindow } from './window.ts';

export interface RunSummary extends RunCounts {
  job: string;
  runId: number;
  mode: RunMode;
  status: RunStatus;
  window: Window | null;
  watermark: { before: Instant | null; after: Instant | null };
  durationMs: number;
  /** Set when the run ended on an error; the message says how to fix it. */
  error?: string;
  delivery?: Record<string, unknown>;
}

export interface RunJobDeps {
  db: Db;
  source: Source;
  destination: Destination;
  transport: Transport;
  job: JobConfig;
  clock: Clock;
  logger: Logger;
  signal: AbortSignal;
  /** Tells a second process which run holds an embedded store. */
  describeHolder?: (info: Record<string, unknown>) => void;
  onProgress?: (counts: RunCounts, window: Window) => void;
}

/**
 * `convey run <job>`: the nightly incremental run. Checks the mapping, sends what earlier runs
 * left open, then reads [watermark − lookback, now − settle) and sends it, moving the watermark
 * with the ledger.
 */
export async function runJob(deps: RunJobDeps, options: { maxRejects?: number } = {}): Promise<RunSummary> {
  const { db, job, clock } = deps;
  const startedAt = clock.monotonic();
  const held = await holdJob(db, job.name, 'run', { sqlHash: job.sqlHash });
  const counts = zeroCounts();
  deps.describeHolder?.({ job: job.name, runId: held.runId });
  let window: Window | null = null;
  let before: Instant | undefined;
  let after: Instant | undefined;
  try {
    before = await readWatermark(db, job.name);
    after = before;
    const win = incrementalWindow(job, before, clock.now());
    window = win;
    await updateRunWindow(db, held.runId, win.start, win.end, before);
    if (held.crashedRuns.length) {
      deps.logger.warn(`earlier run(s) ${held.crashedRuns.join(', ')} ended without finishing; their unfinished conversions are sent first`, { job: job.name });
    }

    // Before anything is sent: the mapping must return what the destination needs.
    const columns = await describeMapping(deps.source, mappingOf(job), win);
    const problems = deps.destination.checkColumns(columns);
    if (problems.length) {
      throw new ConveyError('MAPPING_INVALID', problems.map((p) => `${job.sqlFile}: ${p}`).join('\n'), {
        hint: `${deps.destination.label} cannot send this mapping; fix the SELECT in ${job.sqlFile}.`,
      });
    }
    const progress = (): void => deps.onProgress?.(counts, win);
    const common = { db, destination: deps.destination, transport: deps.transport, job, runId: held.runId, signal: deps.signal, counts, onProgress: progress };
    await sendOpenConversions(common);
    const result = await sendWindow(
      { ...common, source: deps.source, logger: deps.logger },
      { window: win, advanceWatermark: true, resolveRejects: (await countOpenRejects(db, job.name)) > 0 },
    );
    after = result.watermark ?? before;
    counts.requests = deps.transport.requestCount();
    const status = outcome(counts, deps.signal.aborted, options.maxRejects ?? job.maxRejects);
    await finishRun(db, held.runId, { status, counts: { ...counts }, watermarkAfter: after });
    return summary(held.runId, status);
  } catch (error) {
    counts.requests = deps.transport.requestCount();
    const message = error instanceof Error ? error.message : String(error);
    await finishRun(db, held.runId, { status: 'failed', counts: { ...counts }, watermarkAfter: after, error: message }).catch(() => undefined);
    throw error;
  } finally {
    await held.release();
  }

  function summary(runId: number, status: RunStatus): RunSummary {
    return {
      job: job.name,
      runId,
      mode: 'run',
      status,
      window,
      ...counts,
      watermark: { before: before ?? null, after: after ?? null },
      durationMs: Math.round(clock.monotonic() - startedAt),
    };
  }
}

/** How a run ended: interrupted by a signal, failed (conversions failed, too many rejects), or succeeded. */
export function outcome(counts: RunCounts, interrupted: boolean, maxRejects: number | undefined): RunStatus {
  if (interrupted) return 'interrupted';
  if (counts.failed > 0) return 'failed';
  if (maxRejects !== undefined && counts.rejected > maxRejects) return 'failed';
  return 'succeeded';
}
