import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import test from 'ava';
import { createLogger } from '../src/log.ts';
import { createNotifyHttp } from '../src/notify/http.ts';
import { createNotifiers, notifyRunFinished } from '../src/notify/notifications.ts';
import type { FinishedRun, Notifier, NotifyDeps } from '../src/notify/notifier.ts';
import type { NotifyConfig } from '../src/config/notify.ts';
import type { RunSummary } from '../src/pipeline/run-job.ts';
import { openStateStore, stateLocation, type StateStore } from '../src/state/store.ts';
import { FakeClock } from '../src/time/clock.ts';
import { captureServer, type CaptureServer } from './helpers/capture-server.ts';
import { createTestProject, type TestProject } from './helpers/project.ts';

/**
 * The contract every notifier passes (src/notify/notifier.ts): it delivers a failed run naming
 * the job and that it failed; a target that refuses costs a log line that names the notifier and
 * no secret, and the call still resolves; an HTTP target that never answers is given up once
 * the clock passes the notify timeout. Each notifier is built through createNotifiers, from the
 * config the job loader produces.
 */

const SECRET = 's3cr3t-T0KEN';

interface Target {
  config: NotifyConfig;
  /** Everything that arrived, as text. */
  received(): Promise<string>;
  /** What in `received` says the run failed. */
  failed: RegExp;
  close(): Promise<void>;
}

interface Harness {
  name: string;
  target(answer: 'ok' | 'fail' | 'stall'): Promise<Target>;
  /** Only HTTP notifiers can be left waiting. */
  stalls: boolean;
}

let project: TestProject;
let store: StateStore;
test.before(async () => {
  project = await createTestProject();
  store = await openStateStore(stateLocation(project.dir, project.env), 'contract test');
});
test.after.always(async () => {
  await store?.close();
  await project?.close();
});

const summary: RunSummary = {
  job: 'orders', runId: 7, mode: 'run', status: 'failed', window: null,
  read: 10, sent: 0, alreadySent: 0, rejected: 0, failed: 10, deferred: 0, skipped: 0, retried: 0, resent: 0, requests: 10,
  watermark: { before: null, after: null }, durationMs: 1200, warnings: [],
  headline: 'every request failed: the endpoint presents a certificate no one vouches for (TLS)',
  failures: [{ cause: 'tls_SELF_SIGNED_CERT_IN_CHAIN', kind: 'tls', code: 'SELF_SIGNED_CERT_IN_CHAIN', message: 'self-signed certificate in certificate chain', endpoint: 'https://logx.example/v1/events', conversions: 10, firstSeen: '2026-12-04T03:15:01Z', lastSeen: '2026-12-04T03:15:02Z', retryable: false, action: 'Install the CA or fix the endpoint.' }],
};

const failedRun = (): FinishedRun => ({
  job: 'orders', mode: 'run', command: 'convey run orders', runId: 7, exitCode: 1, summary,
  startedAtMs: Date.parse('2026-12-04T03:15:00Z'), finishedAtMs: Date.parse('2026-12-04T03:15:02Z'), store: store.db,
  history: { lastRuns: [{ id: 7, mode: 'run', status: 'failed', startedAtMs: Date.parse('2026-12-04T03:15:00Z'), finishedAtMs: Date.parse('2026-12-04T03:15:02Z'), counts: { read: 10, failed: 10, requests: 10 }, warnings: 0, lastSuccessMs: null }], watermarkMs: null },
});

function deps(clock = new FakeClock(Date.parse('2026-12-04T03:15:03Z'))): { deps: NotifyDeps; log: string[]; stderr: string[]; clock: FakeClock } {
  const log: string[] = [];
  const stderr: string[] = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (line) => log.push(line) });
  const stream = new Writable({ write: (chunk: Buffer, _e, cb) => (stderr.push(chunk.toString()), cb()) });
  return { deps: { clock, logger, http: createNotifyHttp({ clock, timeoutMs: 10_000 }), stderr: stream }, log, stderr, clock };
}

/** The webhook, the heartbeat and OTLP send to a capture server; the secret is in the path. */
function httpHarness(name: string, config: (url: string) => NotifyConfig, failed: RegExp): Harness {
  return {
    name,
    stalls: true,
    async target(answer) {
      const server: CaptureServer = await captureServer(answer);
      return {
        config: config(`${server.url}/hook/${SECRET}`),
        received: async () => server.requests.map((r) => `${r.method} ${r.path}\n${r.text}`).join('\n'),
        failed,
        close: () => server.close(),
      };
    },
  };
}

const harnesses: Harness[] = [
  {
    name: 'github-actions',
    stalls: false,
    async target(answer) {
      const dir = mkdtempSync(join(tmpdir(), 'convey-gha-'));
      // A step summary that cannot be written: a path under a file.
      const file = answer === 'ok' ? join(dir, 'summary.md') : join(dir, 'not-a-dir', 'summary.md');
      if (answer !== 'ok') writeFileSync(join(dir, 'not-a-dir'), '');
      return {
        config: { github: { stepSummary: file, annotations: true } },
        received: async () => (answer === 'ok' ? readFileSync(file, 'utf8') : ''),
        failed: /❌ convey run orders failed \(exit 1\)/,
        close: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  httpHarness('webhook', (url) => ({ webhook: { url, format: 'json', stillFailingEvery: 3, warnings: true } }), /"event":"failed"/),
  httpHarness('heartbeat', (url) => ({ heartbeat: { url, failWith: 'exit-code' } }), new RegExp(`POST /hook/${SECRET}/1\\n`)),
  httpHarness('otlp', (url) => ({ otlp: { url, protocol: 'http/json', headers: {}, timeoutMs: 10_000, resource: { 'service.name': 'convey' } } }), /"key":"status","value":\{"stringValue":"failed"\}\}\],"startTimeUnixNano":"\d+","timeUnixNano":"\d+","asDouble":1/),
  {
    name: 'prometheus',
    stalls: false,
    async target(answer) {
      const dir = mkdtempSync(join(tmpdir(), 'convey-prom-'));
      // A collector folder that cannot be made: a path under a file.
      if (answer !== 'ok') writeFileSync(join(dir, 'file'), '');
      const target = answer === 'ok' ? dir : join(dir, 'file', 'textfile');
      return {
        config: { prometheus: { dir: target } },
        received: async () => readFileSync(join(dir, 'convey_orders.prom'), 'utf8'),
        failed: /convey_last_run_status\{convey_job="orders",mode="run",status="failed"\} 1/,
        close: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
];

/** Clears the webhook's memory, so each contract test starts from "ok". */
const forget = (): Promise<unknown> => store.db.query('delete from convey.notify_state');

for (const harness of harnesses) {
  test.serial(`${harness.name}: a failed run arrives, naming the job and that it failed`, async (t) => {
    await forget();
    const target = await harness.target('ok');
    t.teardown(() => target.close());
    const { deps: d, log } = deps();
    const notifiers: Notifier[] = createNotifiers(target.config, d);
    t.is(notifiers.length, 1);
    await notifyRunFinished(notifiers, failedRun(), d.logger);
    await d.http.close();
    t.deepEqual(log.filter((l) => l.includes('"level":"warn"')), []);
    const received = await target.received();
    t.regex(received, /orders/);
    t.regex(received, target.failed);
  });

  test.serial(`${harness.name}: a target that refuses is logged with the notifier's name and no secret; the call resolves`, async (t) => {
    await forget();
    const target = await harness.target('fail');
    t.teardown(() => target.close());
    const { deps: d, log } = deps();
    await notifyRunFinished(createNotifiers(target.config, d), failedRun(), d.logger);
    await d.http.close();
    const warnings = log.filter((l) => l.includes('"level":"warn"'));
    t.is(warnings.length, 1, log.join('\n'));
    t.regex(warnings[0]!, new RegExp(`"msg":"could not notify ${harness.name}`));
    t.false(warnings[0]!.includes(SECRET));
  });

  if (harness.stalls) {
    test.serial(`${harness.name}: a target that never answers is given up when the clock passes the timeout`, async (t) => {
      await forget();
      const target = await harness.target('stall');
      t.teardown(() => target.close());
      const { deps: d, log, clock } = deps();
      let settled = false;
      const done = notifyRunFinished(createNotifiers(target.config, d), failedRun(), d.logger).then(() => (settled = true));
      // Wait for the request to arrive (a real server, on its own time), then move the clock.
      await waitUntil(async () => (await target.received()).length > 0);
      t.false(settled);
      await clock.advance(10_000);
      await done;
      await d.http.close();
      t.regex(log.join('\n'), /could not notify .*: no answer within 10 s/);
    });
  }
}

async function waitUntil(probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 800 && !(await probe()); i++) await new Promise((r) => setTimeout(r, 25));
}
