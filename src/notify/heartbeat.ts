import type { HeartbeatConfig } from '../config/notify.ts';
import { originOf } from './http.ts';
import type { Notifier, NotifyDeps } from './notifier.ts';
import { outcomeOf, plainText } from './report.ts';

/** healthchecks.io keeps the first 100 KB of a ping's body; the text is a few hundred bytes. */
const MAX_BODY_CHARS = 10_000;

/**
 * A heartbeat in the style of healthchecks.io and Cronitor: `<url>/start` once the run holds the
 * job, then `<url>` when it exits 0, or `<url>/<exit code>` (`/fail` if asked) otherwise, with
 * the summary as the body. The service alerts when a ping is late, so a run that never started
 * (the scheduler stopped, the machine is gone) is noticed too. A run that found the job held
 * pings nothing: the run holding it does.
 */
export function heartbeatNotifier(config: HeartbeatConfig, deps: NotifyDeps): Notifier {
  return {
    name: `heartbeat (${originOf(config.url)})`,
    async runStarted() {
      await deps.http.send(`${config.url}/start`, { headers: { 'content-type': 'text/plain' }, body: '' });
    },
    async runFinished(run) {
      if (outcomeOf(run) === 'held') return;
      const url = run.exitCode === 0 ? config.url : `${config.url}/${config.failWith === 'fail' ? 'fail' : run.exitCode}`;
      await deps.http.send(url, { headers: { 'content-type': 'text/plain; charset=utf-8' }, body: plainText(run).slice(0, MAX_BODY_CHARS) });
    },
  };
}
