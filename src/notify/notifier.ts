import type { Writable } from 'node:stream';
import type { Logger } from '../log.ts';
import type { PlanResult } from '../pipeline/plan-window.ts';
import type { RunSummary } from '../pipeline/run-job.ts';
import type { Db } from '../state/db.ts';
import type { LastRun } from '../state/sql/history.ts';
import type { RunMode } from '../state/sql/runs.ts';
import type { Clock } from '../time/clock.ts';
import type { NotifyHttp } from './http.ts';

/**
 * A place a run's outcome goes: GitHub Actions, a webhook, a heartbeat, metrics. Each lives in
 * its own file of this folder, is built from the job's resolved `notify` config (only when
 * configured), and passes test/notify-contract.test.ts. A notifier may throw: the caller logs it
 * and the run's outcome and exit code stay as they were.
 */
export interface Notifier {
  /** For logs: "webhook (hooks.slack.com)"; never a secret. */
  readonly name: string;
  /** The run holds the job and is recorded. */
  runStarted?(run: RunStart): Promise<void>;
  /** One run of one job finished, however it ended. */
  runFinished(run: FinishedRun): Promise<void>;
  /** `convey plan` finished (a plan, or the error that stopped it). */
  planned?(plan: PlanOutcome): Promise<void>;
}

export interface NotifyDeps {
  clock: Clock;
  logger: Logger;
  /** HTTP through undici, every call bounded by the notify timeout on `clock`. */
  http: NotifyHttp;
  /** Where annotations go (stdout carries --json summaries). */
  stderr: Writable;
}

export interface RunStart {
  job: string;
  mode: RunMode;
  command: string;
  runId: number;
}

/** What ended an error-stopped run, as the CLI reports it. */
export interface RunError {
  code: string;
  message: string;
  hint?: string;
}

/**
 * One finished run of one job: its summary (even a failed run has one), or the error that stopped
 * it before it could summarise; its exit code; and the job's history read after it.
 */
export interface FinishedRun {
  job: string;
  mode: RunMode;
  /** "convey run orders". */
  command: string;
  /** Null when the run stopped before it was recorded (the job was held, the source was down). */
  runId: number | null;
  exitCode: number;
  summary?: RunSummary;
  error?: RunError;
  startedAtMs: number;
  finishedAtMs: number;
  /** The state store, for channels that remember what they told; absent when it could not be opened. */
  store?: Db;
  /** The job's history after this run; absent when the state store could not be read. */
  history?: JobHistory;
}

export interface JobHistory {
  /** The last finished run of each mode (this one included once it was recorded). */
  lastRuns: LastRun[];
  watermarkMs: number | null;
}

export interface PlanOutcome {
  job: string;
  /** jobs/<name>.sql, relative to the project. */
  sqlFile: string;
  projectDir: string;
  destination: string;
  plan?: PlanResult;
  error?: RunError;
}
