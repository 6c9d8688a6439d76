import type { JobConfig } from '../config/project.ts';
import type { Destination } from '../destinations/destination.ts';
import { ConveyError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Source } from '../source/open.ts';
import { newSpoolStats, type SpoolStats } from '../source/spool.ts';
import type { Window } from '../time/window.ts';
import type { Db } from '../state/db.ts';
import { countOpen } from '../state/sql/ledger.ts';
import { countOpenRejects } from '../state/sql/rejects.ts';
import { finishRun, updateRunWindow, type RunMode, type RunStatus } from '../state/sql/runs.ts';
import { readWatermark } from '../state/sql/watermarks.ts';
import type { Clock } from '../time/clock.ts';
import { toEpochMillis, type Instant } from '../time/instant.ts';
import { judgeRun } from '../verdict/judge.ts';
import type { Baseline, Verdict } from '../verdict/warning.ts';
import { describeJobMapping } from './checked-batches.ts';
import { zeroCounts, type RunCounts } from './counts.ts';
import { failureHeadline, Failures, runStop, stopHeadline, type FailureGroup, type RunStop } from './failures.ts';
import { holdJob } from './job-lock.ts';
import { sendOpenConversions, type SendOpenDeps } from './send-open.ts';
import { sendWindow, type SendDeps } from './send-window.ts';
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
  /** Delivery figures (rates, retries, throttling) from the transport. */
  delivery?: Record<string, unknown>;
  /** Mode-specific facts (backfill chunks, replay results). */
  details?: Record<string, unknown>;
  /** Why conversions failed, by cause and endpoint, most conversions first; [] when none did. */
  failures: FailureGroup[];
  /** One line when the run failed for a cause retrying cannot fix (TLS, DNS, 401/403/404, 3xx). */
  headline?: string;
  /** Present when the run stopped early: requests in a row failed for a cause that will not pass. */
  stopped?: RunStop;
  /** What the verdict found unusual against the job's history (src/verdict/); stored with the run. */
  warnings: Verdict['warnings'];
  /** What the run was compared with; absent when it got no verdict (retry, replay, interrupted). */
  baseline?: Baseline;
}

export interface RunJobDeps {
  db: Db;
  /** Not needed by `retry`, which sends from the ledger only. */
  source?: Source;
  destination: Destination;
  transport: Transport;
  job: JobConfig;
  clock: Clock;
  logger: Logger;
  signal: AbortSignal;
  /** The host recorded for the run (CONVEY_HOSTNAME, else the machine's name). */
  host?: string;
  /** Tells a second process which run holds an embedded store. */
  describeHolder?: (info: Record<string, unknown>) => void;
  onProgress?: (counts: RunCounts, window: Window | null) => void;
  /** Filled in by the source read as it goes (for the progress line's total). */
  readStats?: SpoolStats;
  /** The run holds the job and is recorded (a heartbeat's /start). */
  onStarted?: (runId: number) => void;
}

/** What one kind of run does once it holds the job. */
export interface RunPlan {
  mode: RunMode;
  /** The window the run covers (for the record and the mapping check); undefined for retry. */
  window?(watermark: Instant | undefined): Window | Promise<Window>;
  body(run: RunContext): Promise<void>;
  maxRejects?: number;
}

export interface RunContext {
  runId: number;
  counts: RunCounts;
  window: Window | null;
  watermarkBefore: Instant | undefined;
  /** Dependencies for the send steps, with progress reporting wired in (`send` needs a source). */
  send: SendDeps | undefined;
  open: SendOpenDeps;
  /** Record where the watermark ended (incremental runs). */
  setWatermark(value: Instant | undefined): void;
  /** Add what a step returned about the conversions that failed. */
  addFailures(failures: Failures): void;
  details: Record<string, unknown>;
}

/**
 * Every run, whatever its mode: take the job (one run at a time, on any machine), record the run,
 * check the mapping before anything is sent, do the mode's work, record how it ended. The summary
 * is exact: the counts written to the run history are the ones returned.
 */
export async function executeRun(deps: RunJobDeps, plan: RunPlan): Promise<RunSummary> {
  const { db, job, clock } = deps;
  const startedAt = clock.monotonic();
  const startedAtMs = clock.now();
  const held = await holdJob(db, job.name, plan.mode, { sqlHash: job.sqlHash }, deps.host);
  deps.describeHolder?.({ job: job.name, runId: held.runId });
  deps.onStarted?.(held.runId);
  const counts = zeroCounts();
  const failures = new Failures();
  const details: Record<string, unknown> = {};
  let window: Window | null = null;
  let before: Instant | undefined;
  let after: Instant | undefined;
  try {
    before = await readWatermark(db, job.name);
    after = before;
    if (plan.window) {
      window = await plan.window(before);
      await updateRunWindow(db, held.runId, window.start, window.end, before);
    }
    if (held.crashedRuns.length) {
      deps.logger.warn(`run(s) ${held.crashedRuns.join(', ')} of this job ended without finishing; their unfinished conversions are sent first`);
    }
    // Before anything is sent: the mapping must return what the destination needs.
    const mapping = window && deps.source ? await describeJobMapping(deps.source, job, deps.destination, window) : undefined;
    const progress = (): void => deps.onProgress?.(counts, window);
    const readStats = deps.readStats ?? newSpoolStats();
    // Stop reading when told to, when the job's lock is lost (another worker may take it), or when
    // the transport stopped sending because the endpoint refuses every request for a reason that
    // will not pass (delivery/endpoint-breaker.ts). The last is the same stop as SIGINT, the path
    // that keeps every conversion: the batches already read are claimed and recorded (failed, or
    // deferred if their requests never left), no further rows are read, and the watermark stays
    // below every row not recorded (send-window.ts), so the next run sends what was left first
    // and then reads on.
    const breaker = deps.transport.breaker;
    const signal = AbortSignal.any([deps.signal, db.lockLost, ...(breaker ? [breaker.signal] : [])]);
    const open: SendOpenDeps = { db, destination: deps.destination, transport: deps.transport, job, runId: held.runId, signal, counts, onProgress: progress };
    const context: RunContext = {
      runId: held.runId,
      counts,
      window,
      watermarkBefore: before,
      open,
      send: deps.source && mapping ? { ...open, source: deps.source, mapping, clock, logger: deps.logger, readStats } : undefined,
      setWatermark: (value) => {
        after = value ?? after;
      },
      addFailures: (more) => failures.merge(more),
      details,
    };
    await plan.body(context);
    if (db.lockLost.aborted) throw lockLostError(db, job.name);
    if (readStats.rowsSpooled) {
      // The query ended before sending did: say what that cost on disk.
      details.spooled = { rows: readStats.rowsSpooled, bytes: readStats.bytesSpooled };
      deps.logger.info(`read the rest of the window into a spool file after the query had waited ${deps.source!.spoolAfterMs / 1000} s for sending`, details.spooled as Record<string, unknown>);
    }
    counts.requests = deps.transport.requestCount();
    const trip = breaker?.tripped;
    const status = outcome(counts, deps.signal.aborted, plan.maxRejects ?? job.maxRejects, trip !== undefined);
    const failed = failures.list(job.name);
    let stopped: RunStop | undefined;
    if (trip && status === 'failed') {
      const open = await countOpen(db, job.name);
      stopped = runStop(trip, { notAttempted: counts.deferred, waiting: open.failed + open.deferred + open.inDoubt }, job.name);
    }
    const headline = stopped ? stopHeadline(stopped, plan.mode) : status === 'failed' ? failureHeadline(failed) : undefined;
    // A stopped run's record says why it stopped (`convey status` shows it as the run's error).
    await finishRun(db, held.runId, { status, counts: { ...counts }, watermarkAfter: after, failures: failed, ...(stopped ? { error: headline } : {}) });
    const verdict = await judge(deps, {
      runId: held.runId,
      mode: plan.mode,
      status,
      window,
      counts,
      before,
      after,
      startedAtMs,
    });
    return {
      job: job.name,
      runId: held.runId,
      mode: plan.mode,
      status,
      window,
      ...counts,
      watermark: { before: before ?? null, after: after ?? null },
      durationMs: Math.round(clock.monotonic() - startedAt),
      ...(Object.keys(details).length ? { details } : {}),
      failures: failed,
      ...(headline ? { headline } : {}),
      ...(stopped ? { stopped } : {}),
      warnings: verdict.warnings,
      ...(verdict.baseline ? { baseline: verdict.baseline } : {}),
    };
  } catch (caught) {
    // Once the lock is gone, whatever failed next (a write on a connection the server has ended)
    // is a consequence: the loss is what the operator needs to read.
    const error = db.lockLost.aborted ? lockLostError(db, job.name) : caught;
    counts.requests = deps.transport.requestCount();
    await finishRun(db, held.runId, { status: 'failed', counts: { ...counts }, watermarkAfter: after, error: errorMessage(error), failures: failures.list(job.name) }).catch(() => undefined);
    throw error;
  } finally {
    await held.release();
  }
}

function lockLostError(db: Db, job: string): ConveyError {
  return new ConveyError('STATE_ERROR', `lost the state store connection holding job "${job}": ${errorMessage(db.lockLost.reason)}`, {
    hint: 'This run stopped sending at once; everything sent so far is recorded (or in doubt, and resent by the next run). Check the state store and run again.',
  });
}

/**
 * The verdict on a finished run, logged as warnings. A verdict that cannot be made (the history
 * unreadable) is logged and leaves the run as it ended: everything was sent and recorded.
 */
async function judge(
  deps: RunJobDeps,
  run: { runId: number; mode: RunMode; status: RunStatus; window: Window | null; counts: RunCounts; before: Instant | undefined; after: Instant | undefined; startedAtMs: number },
): Promise<Verdict> {
  if (!run.window) return { warnings: [], baseline: null };
  try {
    const verdict = await judgeRun(
      deps.db,
      {
        job: deps.job.name,
        runId: run.runId,
        mode: run.mode,
        status: run.status,
        timezone: deps.job.timezone,
        window: { startMs: toEpochMillis(run.window.start), endMs: toEpochMillis(run.window.end) },
        read: run.counts.read,
        rejected: run.counts.rejected,
        startedAtMs: run.startedAtMs,
        endedAtMs: deps.clock.now(),
        watermarkBeforeMs: run.before ? toEpochMillis(run.before) : null,
        watermarkAfterMs: run.after ? toEpochMillis(run.after) : null,
      },
      deps.job.alerts,
    );
    for (const warning of verdict.warnings) deps.logger.warn(warning.message, { check: warning.check, runId: run.runId });
    return verdict;
  } catch (error) {
    deps.logger.warn(`could not compare run ${run.runId} with the job's history: ${errorMessage(error)}`, { runId: run.runId });
    return { warnings: [], baseline: null };
  }
}

/**
 * `convey run <job>`: the nightly incremental run. Sends what earlier runs left open, then reads
 * [watermark − lookback, now − settle) and sends it, moving the watermark with the ledger.
 */
export function runJob(deps: RunJobDeps, options: { maxRejects?: number } = {}): Promise<RunSummary> {
  return executeRun(deps, {
    mode: 'run',
    ...(options.maxRejects === undefined ? {} : { maxRejects: options.maxRejects }),
    window: (watermark) => incrementalWindow(deps.job, watermark, deps.clock.now()),
    async body(run) {
      run.addFailures((await sendOpenConversions(run.open)).failures);
      // Stopped while sending what earlier runs left (SIGINT, the lock lost, the endpoint
      // refusing every request): reading the window now would only claim rows it cannot send.
      if (run.open.signal.aborted) return;
      const result = await sendWindow(run.send!, {
        window: run.window!,
        advanceWatermark: true,
        resolveRejects: (await countOpenRejects(deps.db, deps.job.name)) > 0 ? 'claimed' : false,
      });
      run.addFailures(result.failures);
      run.setWatermark(result.watermark);
    },
  });
}

/**
 * How a run ended: interrupted by a signal, failed (conversions failed, too many rejects, or
 * stopped early because the endpoint refuses every request), or succeeded.
 */
export function outcome(counts: RunCounts, interrupted: boolean, maxRejects: number | undefined, stopped = false): RunStatus {
  if (interrupted) return 'interrupted';
  if (stopped || counts.failed > 0) return 'failed';
  if (maxRejects !== undefined && counts.rejected > maxRejects) return 'failed';
  return 'succeeded';
}
