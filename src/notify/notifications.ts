import type { Writable } from 'node:stream';
import { NOTIFY_TIMEOUT_MS, type NotifyConfig } from '../config/notify.ts';
import { errorMessage, toConveyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RunSummary } from '../pipeline/run-job.ts';
import type { Db } from '../state/db.ts';
import { lastRunsByMode } from '../state/sql/history.ts';
import type { RunMode } from '../state/sql/runs.ts';
import { readWatermark } from '../state/sql/watermarks.ts';
import type { Clock } from '../time/clock.ts';
import { toEpochMillis } from '../time/instant.ts';
import { githubActionsNotifier } from './github-actions.ts';
import { heartbeatNotifier } from './heartbeat.ts';
import { createNotifyHttp } from './http.ts';
import type { FinishedRun, JobHistory, Notifier, NotifyDeps, PlanOutcome } from './notifier.ts';
import { otlpNotifier } from './otlp.ts';
import { prometheusNotifier } from './prometheus.ts';
import { webhookNotifier } from './webhook.ts';

/** The configured notifiers, one line each: adding one is a file in this folder and a line here. */
export function createNotifiers(config: NotifyConfig, deps: NotifyDeps): Notifier[] {
  return [
    config.github && githubActionsNotifier(config.github, deps),
    config.webhook && webhookNotifier(config.webhook, deps),
    config.heartbeat && heartbeatNotifier(config.heartbeat, deps),
    config.prometheus && prometheusNotifier(config.prometheus, deps),
    config.otlp && otlpNotifier(config.otlp, deps),
  ].filter((n): n is Notifier => Boolean(n));
}

/**
 * Calls every notifier at once and waits for all of them. A notifier that fails is logged, with
 * its name and never its URL, and changes nothing else: not the run, not its exit code.
 */
export async function notifyAll(notifiers: readonly Notifier[], logger: Logger, call: (notifier: Notifier) => Promise<void> | undefined): Promise<void> {
  await Promise.all(
    notifiers.map(async (notifier) => {
      try {
        await call(notifier);
      } catch (error) {
        logger.warn(`could not notify ${notifier.name}: ${errorMessage(error)}`, { notifier: notifier.name.split(' ')[0] });
      }
    }),
  );
}

/** The entry point per finished run (one job; `run --all` calls it per job). */
export function notifyRunFinished(notifiers: readonly Notifier[], run: FinishedRun, logger: Logger): Promise<void> {
  return notifyAll(notifiers, logger, (n) => n.runFinished(run));
}

/** What the metrics and the webhook read after a run: the last run of each mode, the watermark. */
export async function loadJobHistory(db: Db, job: string): Promise<JobHistory> {
  const [lastRuns, watermark] = await Promise.all([lastRunsByMode(db, job), readWatermark(db, job)]);
  return { lastRuns, watermarkMs: watermark ? toEpochMillis(watermark) : null };
}

export interface RunNotifications {
  /** The run holds the job (RunJobDeps.onStarted). */
  started(runId: number): void;
  /** The run ended, with a summary or an error; called once (later calls do nothing). */
  finished(outcome: { summary?: RunSummary; error?: unknown; exitCode: number }, store: Db | undefined): Promise<void>;
}

/**
 * The notifications of one command's run of one job. Nothing is set up when no channel is
 * configured. A start ping is awaited before the end ping, so a heartbeat service never sees
 * them in the wrong order.
 */
export function runNotifications(
  config: NotifyConfig,
  run: { job: string; mode: RunMode; command: string },
  deps: { clock: Clock; logger: Logger; stderr: Writable },
): RunNotifications {
  const http = createNotifyHttp({ clock: deps.clock, timeoutMs: NOTIFY_TIMEOUT_MS });
  const notifiers = createNotifiers(config, { ...deps, http });
  const startedAtMs = deps.clock.now();
  let runId: number | null = null;
  let starting: Promise<void> = Promise.resolve();
  let done = false;
  return {
    started(id) {
      runId = id;
      if (notifiers.length) starting = notifyAll(notifiers, deps.logger, (n) => n.runStarted?.({ ...run, runId: id }));
    },
    async finished(outcome, store) {
      if (done || notifiers.length === 0) return;
      done = true;
      try {
        await starting;
        let history: JobHistory | undefined;
        if (store) {
          history = await loadJobHistory(store, run.job).catch((error: unknown) => {
            deps.logger.warn(`could not read the job's history for notifications: ${errorMessage(error)}`);
            return undefined;
          });
        }
        const error = outcome.error === undefined ? undefined : toConveyError(outcome.error);
        await notifyRunFinished(
          notifiers,
          {
            ...run,
            runId,
            exitCode: outcome.exitCode,
            ...(outcome.summary ? { summary: outcome.summary } : {}),
            ...(error ? { error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) } } : {}),
            startedAtMs,
            finishedAtMs: deps.clock.now(),
            ...(store ? { store } : {}),
            ...(history ? { history } : {}),
          },
          deps.logger,
        );
      } finally {
        await http.close();
      }
    },
  };
}

/** `convey plan`: only channels that show plans (GitHub's step summary) take part. */
export async function notifyPlan(config: NotifyConfig, plan: PlanOutcome, deps: { clock: Clock; logger: Logger; stderr: Writable }): Promise<void> {
  const http = createNotifyHttp({ clock: deps.clock, timeoutMs: NOTIFY_TIMEOUT_MS });
  try {
    await notifyAll(createNotifiers(config, { ...deps, http }), deps.logger, (n) => n.planned?.(plan));
  } finally {
    await http.close();
  }
}
