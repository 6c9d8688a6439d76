import { hostname } from 'node:os';
import type { WebhookConfig } from '../config/notify.ts';
import { conveyVersion } from '../package-root.ts';
import { advanceNotifyState, restoreNotifiedState, type NotifiedState } from '../state/sql/notify-state.ts';
import { describeDuration } from '../time/describe.ts';
import { originOf } from './http.ts';
import type { FinishedRun, Notifier, NotifyDeps } from './notifier.ts';
import { countsLine, failureLine, failuresOf, headline, n, outcomeOf, titleOf, warningLine, warningsOf } from './report.ts';

export type WebhookEvent = 'failed' | 'still_failing' | 'recovered' | 'warnings';

/**
 * What to tell, given what was told last: a webhook speaks on a change of state, not every
 * night. States are 'ok', 'failing', and 'warning:<checks>' (a different set of warnings is a
 * change). A failing job is reminded of every `stillFailingEvery` failed runs in a row.
 * Interrupted runs and runs that found the job held change nothing.
 */
export function nextState(previous: NotifiedState, run: FinishedRun, config: WebhookConfig, nowMs: number): { current: NotifiedState; event?: WebhookEvent } | undefined {
  const outcome = outcomeOf(run);
  if (outcome === 'held' || outcome === 'interrupted') return undefined;
  if (outcome === 'failed') {
    const failures = previous.failures + 1;
    if (previous.state !== 'failing') return { current: { state: 'failing', failures, sinceMs: nowMs }, event: 'failed' };
    const current = { ...previous, failures };
    return failures % config.stillFailingEvery === 0 ? { current, event: 'still_failing' } : { current };
  }
  const checks = [...new Set(warningsOf(run).map((w) => w.check))].sort();
  const state = outcome === 'warnings' && config.warnings ? `warning:${checks.join(',')}` : 'ok';
  const current = { state, failures: 0, sinceMs: state === previous.state ? previous.sinceMs : nowMs };
  if (previous.state === 'failing') return { current, event: 'recovered' };
  if (state === previous.state) return { current };
  if (state === 'ok') return config.warnings ? { current, event: 'recovered' } : { current };
  return { current, event: 'warnings' };
}

/**
 * A POST to an incoming webhook when the job's state changes: Slack-compatible (`text` and
 * `blocks`) or convey's own JSON (which has a `text` too, so a chat webhook shows it). What was
 * told is remembered in the state store (convey.notify_state), so the next run, in another
 * process or on another machine, knows whether anything changed. A POST that fails restores the
 * memory, and the next run tries again.
 */
export function webhookNotifier(config: WebhookConfig, deps: NotifyDeps): Notifier {
  return {
    name: `webhook (${originOf(config.url)})`,
    async runFinished(run) {
      if (!run.store) throw new Error('the state store could not be opened, so whether the state changed is unknown: not sent');
      const key = { job: run.job, mode: run.mode, channel: 'webhook' };
      const nowMs = deps.clock.now();
      let decision: ReturnType<typeof nextState>;
      const { previous } = await run.store.transaction((tx) =>
        advanceNotifyState(tx, key, run.runId, nowMs, (before) => {
          decision = nextState(before, run, config, nowMs);
          return decision?.current ?? before;
        }),
      );
      if (!decision?.event) return;
      const body = config.format === 'slack' ? slackBody(decision.event, run, previous, decision.current) : jsonBody(decision.event, run, previous, decision.current);
      try {
        await deps.http.send(config.url, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      } catch (error) {
        await restoreNotifiedState(run.store, key, decision.current.state, previous);
        throw error;
      }
    },
  };
}

const EMOJI: Record<WebhookEvent, string> = { failed: ':x:', still_failing: ':x:', recovered: ':white_check_mark:', warnings: ':warning:' };

/** The first line: what changed. */
function eventText(event: WebhookEvent, run: FinishedRun, previous: NotifiedState, current: NotifiedState): string {
  switch (event) {
    case 'failed':
      return titleOf(run);
    case 'still_failing':
      return `${run.command} is still failing: ${n(current.failures)} runs in a row, since ${new Date(current.sinceMs).toISOString()} (exit ${run.exitCode})`;
    case 'recovered':
      return previous.state === 'failing'
        ? `${run.command} recovered after ${n(previous.failures)} failed run${previous.failures === 1 ? '' : 's'} (${describeDuration(run.finishedAtMs - previous.sinceMs)})${warningsOf(run).length ? `, with ${warningsOf(run).length} warning(s)` : ''}`
        : `${run.command} is back to normal: no warnings`;
    case 'warnings':
      return titleOf(run);
  }
}

function detailLines(run: FinishedRun): string[] {
  const lines: string[] = [];
  const first = headline(run);
  if (first && outcomeOf(run) === 'failed') lines.push(first);
  if (run.error?.hint) lines.push(run.error.hint);
  if (run.summary) lines.push(countsLine(run.summary));
  for (const f of failuresOf(run.summary)) lines.push(`• ${failureLine(f)}`);
  for (const w of warningsOf(run)) lines.push(`• ${warningLine(w)}`);
  return lines;
}

function context(run: FinishedRun): string {
  return [run.runId === null ? undefined : `run ${run.runId}`, hostname(), `convey ${conveyVersion}`].filter(Boolean).join(' · ');
}

export function slackBody(event: WebhookEvent, run: FinishedRun, previous: NotifiedState, current: NotifiedState): Record<string, unknown> {
  const title = `${EMOJI[event]} ${eventText(event, run, previous, current)}`;
  const details = detailLines(run);
  return {
    text: [title, ...details].join('\n'),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${escapeSlack(title)}*` } },
      ...(details.length ? [{ type: 'section', text: { type: 'mrkdwn', text: details.map(escapeSlack).join('\n') } }] : []),
      { type: 'context', elements: [{ type: 'mrkdwn', text: escapeSlack(context(run)) }] },
    ],
  };
}

/** Slack's mrkdwn reserves &, < and > (https://api.slack.com/reference/surfaces/formatting#escaping). */
const escapeSlack = (text: string): string => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

export function jsonBody(event: WebhookEvent, run: FinishedRun, previous: NotifiedState, current: NotifiedState): Record<string, unknown> {
  const s = run.summary;
  return {
    text: [eventText(event, run, previous, current), ...detailLines(run)].join('\n'),
    event,
    job: run.job,
    mode: run.mode,
    state: current.state,
    previousState: previous.state,
    failedRunsInARow: current.failures,
    since: new Date(current.sinceMs).toISOString(),
    run: {
      id: run.runId,
      command: run.command,
      exitCode: run.exitCode,
      status: s?.status ?? 'failed',
      startedAt: new Date(run.startedAtMs).toISOString(),
      finishedAt: new Date(run.finishedAtMs).toISOString(),
      ...(s
        ? {
            window: s.window,
            counts: { read: s.read, sent: s.sent, alreadySent: s.alreadySent, rejected: s.rejected, failed: s.failed, deferred: s.deferred, skipped: s.skipped, retried: s.retried, resent: s.resent, requests: s.requests },
            watermark: s.watermark,
            durationMs: s.durationMs,
          }
        : {}),
    },
    ...(headline(run) ? { headline: headline(run) } : {}),
    failures: failuresOf(s),
    warnings: warningsOf(run),
    ...(run.error ? { error: run.error } : {}),
    host: hostname(),
    conveyVersion,
  };
}
