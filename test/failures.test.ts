import { execFileSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { FailureGroup } from '../src/pipeline/failures.ts';
import type { JobStatus } from '../src/cli/status-view.ts';
import { CONVERSIONS_SQL, classicJob, eventsJob, rows, withReceiver, projectWithRows, type SummaryJson } from './helpers/fixtures.ts';
import type { TestProject } from './helpers/project.ts';

// Each cause of failure against a real local endpoint, followed from the run's --json summary to
// its text summary, its log on stderr, and `convey status`.

type Endpoint = { url: string; close(): Promise<void> };

async function listen(server: ReturnType<typeof createHttpServer>, scheme: 'http' | 'https'): Promise<Endpoint> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const answering = (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Endpoint> =>
  listen(
    createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => handler(req, res));
    }),
    'http',
  );

/** An HTTPS server whose certificate nobody vouches for: made here, self-signed, for 127.0.0.1. */
async function selfSigned(): Promise<Endpoint> {
  const dir = mkdtempSync(join(tmpdir(), 'convey-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => res.writeHead(204).end());
    return await listen(server as unknown as ReturnType<typeof createHttpServer>, 'https');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Expected {
  cause: string;
  kind: FailureGroup['kind'];
  endpoint: string;
  conversions: number;
  retryable: boolean;
  message: RegExp;
  /** Text that must appear nowhere convey writes (credentials in the configured endpoint). */
  secrets?: string[];
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The job `orders` fails for one cause: check it in the --json summary and the log of that run,
 * in the text summary of the next run (which retries the same conversions, and fails alike), and
 * in `convey status`, both ways.
 */
async function failsEverywhere(t: ExecutionContext, project: TestProject, expected: Expected): Promise<SummaryJson> {
  const { cause, kind, endpoint, conversions, retryable } = expected;
  const first = await project.cli(['run', 'orders', '--json']);
  t.is(first.code, 1, first.stderr);
  const summary = first.json<SummaryJson>();
  t.like(summary, { status: 'failed', failed: conversions });
  t.is(summary.failures.length, 1, JSON.stringify(summary.failures));
  const group = summary.failures[0]!;
  t.like(group, { cause, kind, endpoint, conversions, retryable });
  t.regex(group.message, expected.message);
  t.regex(group.action, /convey retry orders/);
  t.true(Date.parse(group.firstSeen) <= Date.parse(group.lastSeen), `${group.firstSeen} → ${group.lastSeen}`);
  if (retryable) t.is(summary.headline, undefined);
  else t.regex(summary.headline ?? '', new RegExp(`^not retryable: .* at ${escape(endpoint)}: ${conversions} conversions? not sent \\[${cause}\\]`));

  // The log: the headline first, then a line per cause with its fields.
  const logged = first.stderr.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const line = logged.find((l) => l.cause === cause && l.conversions === conversions);
  t.like(line, { level: retryable ? 'warn' : 'error', job: 'orders', endpoint, firstSeen: group.firstSeen, lastSeen: group.lastSeen, action: group.action }, first.stderr);
  if (!retryable) t.is(logged.find((l) => l.level === 'error')?.msg, summary.headline, 'the headline is the log\'s first error');

  const second = await project.cli(['run', 'orders']);
  t.is(second.code, 1, second.stderr);
  const text = second.stdout.split('\n');
  if (retryable) t.regex(text[0]!, /^convey run orders \(run \d+\): failed/);
  else t.regex(text[0]!, new RegExp(`^not retryable: .*\\[${cause}\\]`), 'the headline is the summary\'s first line');
  t.regex(second.stdout, new RegExp(`failed +${conversions} `));
  t.regex(second.stdout, new RegExp(`${conversions} × ${cause}${retryable ? '' : ' \\(not retryable\\)'} at ${escape(endpoint)}, `));
  t.regex(second.stdout, new RegExp(escape(group.action)));

  const status = (await project.cli(['status', 'orders', '--json'])).json<{ jobs: JobStatus[] }>().jobs[0]!;
  t.like(status, { state: 'failing', failed: conversions, failingSince: { runs: 2 }, lastFailure: { runId: summary.runId + 1, mode: 'run' } });
  t.like(status.lastFailure!.failures[0], { cause, kind, endpoint, conversions, retryable });
  const detail = await project.cli(['status', 'orders']);
  t.regex(detail.stdout, /state +failing since .*\(2 failed runs in a row/);
  t.regex(detail.stdout, new RegExp(`last failure +run ${summary.runId + 1} \\(run\\)`));
  t.regex(detail.stdout, new RegExp(`${conversions} × ${cause}`));
  const overview = await project.cli(['status']);
  t.regex(overview.stdout, /^JOB +STATE +LAST RUN +LAG +FAILING SINCE +REJECTS +WARNINGS$/m);
  t.regex(overview.stdout, new RegExp(`^orders +failing +#${summary.runId + 1} run failed .* ago +.* ago \\(2 runs\\) +0 +-$`, 'm'));

  for (const secret of expected.secrets ?? []) {
    for (const out of [first.stdout, first.stderr, second.stdout, second.stderr, detail.stdout]) t.false(out.includes(secret), `"${secret}" printed`);
  }
  return summary;
}

test('an endpoint whose certificate nobody vouches for: not retryable, said on the first line, in the log and in status', async (t) => {
  const project = await projectWithRows(t, rows(10));
  const endpoint = await selfSigned();
  t.teardown(() => endpoint.close());
  project.writeJob('orders', CONVERSIONS_SQL, eventsJob({ url: `${endpoint.url}/v1/events` }));
  const summary = await failsEverywhere(t, project, {
    cause: 'tls_DEPTH_ZERO_SELF_SIGNED_CERT',
    kind: 'tls',
    endpoint: `${endpoint.url}/v1/events`,
    conversions: 10,
    retryable: false,
    message: /self-signed certificate/,
  });
  t.is(summary.requests, 1, 'one request for the 10 conversions, not retried: the same certificate comes back');
});

test('a host name that does not resolve: not retryable, and it fails at once', async (t) => {
  // RFC 2606: .invalid never resolves, so nothing leaves the machine. Checked first: a resolver
  // that took seconds to say so would make this test slow, not wrong.
  const host = 'convey-test.invalid';
  await t.throwsAsync(lookup(host), { code: 'ENOTFOUND' });
  const project = await projectWithRows(t, rows(3));
  project.writeJob('orders', CONVERSIONS_SQL, eventsJob({ url: `https://${host}/v1/events` }));
  const summary = await failsEverywhere(t, project, {
    cause: 'dns_ENOTFOUND',
    kind: 'dns',
    endpoint: `https://${host}/v1/events`,
    conversions: 3,
    retryable: false,
    message: /ENOTFOUND convey-test\.invalid/,
  });
  t.is(summary.requests, 1, 'not retried');
});

test('a 401: not retryable; the endpoint is shown without the credentials or key configured in it', async (t) => {
  const project = await projectWithRows(t, rows(4));
  const endpoint = await answering((_req, res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid token"}'));
  t.teardown(() => endpoint.close());
  const configured = endpoint.url.replace('http://', 'http://convey:hunter2@') + '/v1/events?api_key=s3cr3tk3y';
  project.writeJob('orders', CONVERSIONS_SQL, eventsJob({ url: configured }, { batchSize: 2 }));
  await failsEverywhere(t, project, {
    cause: 'http_401',
    kind: 'http',
    endpoint: `${endpoint.url}/v1/events`,
    conversions: 4,
    retryable: false,
    message: /^\{"error":"invalid token"\}$/,
    secrets: ['hunter2', 's3cr3tk3y'],
  });
});

test('500 until the retries run out: retryable, no headline; the classic endpoint is shown without its query (the conversion)', async (t) => {
  const project = await projectWithRows(t, rows(5));
  await withReceiver({ protocol: 'classic', faults: { failRate: 1 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver));
    await failsEverywhere(t, project, {
      cause: 'http_500',
      kind: 'http',
      endpoint: receiver.url, // the query (the conversion) is not part of it
      conversions: 5,
      retryable: true,
      message: /./,
      // The classic query holds the visitor ids.
      secrets: ['u=v1&', 'u=v2&'],
    });
    t.is(receiver.stats().requests, 5 * 2 * 2, 'each conversion tried maxAttempts (2) times in each of the two runs');
  });
});

test('an endpoint that stalls past the timeouts: timeout_headers, retryable', async (t) => {
  const project = await projectWithRows(t, rows(2));
  const endpoint = await answering(() => undefined); // never answers
  t.teardown(() => endpoint.close());
  // undici checks its timers every 500 ms, so 100 ms fires after up to a second: two attempts.
  project.writeJob('orders', CONVERSIONS_SQL, eventsJob({ url: `${endpoint.url}/v1/events` }, { timeouts: { headersMs: 100 } }));
  await failsEverywhere(t, project, {
    cause: 'timeout_headers',
    kind: 'timeout',
    endpoint: `${endpoint.url}/v1/events`,
    conversions: 2,
    retryable: true,
    message: /Headers Timeout/i,
  });
});

test('a run whose conversions all go through has no failures and no headline; status says ok', async (t) => {
  const project = await projectWithRows(t, rows(3));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const run = await project.cli(['run', 'orders', '--json']);
    t.is(run.code, 0, run.stderr);
    const summary = run.json<SummaryJson>();
    t.deepEqual(summary.failures, []);
    t.false('headline' in summary);
    t.notRegex((await project.cli(['run', 'orders'])).stdout, /why failed/);
    const status = (await project.cli(['status', '--json'])).json<{ jobs: JobStatus[] }>().jobs[0]!;
    t.like(status, { state: 'ok', failingSince: null, lastFailure: null, warnings: [], lastRun: { mode: 'run', status: 'succeeded' } });
  });
});
