import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { RunSummary } from '../src/pipeline/run-job.ts';
import { command, runAnnotations } from '../src/notify/github-actions.ts';
import { slackBody } from '../src/notify/webhook.ts';
import { captureServer } from './helpers/capture-server.ts';
import { CONVERSIONS_SQL, eventsJob, insertRows, projectWithRows, rows, withReceiver } from './helpers/fixtures.ts';

const tempDir = (t: { teardown(fn: () => void): void }, prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

test('the webhook speaks once per change of state: first failure, still failing after 3 runs, recovered; a POST that fails is sent again by the next run', async (t) => {
  const project = await projectWithRows(t, rows(20));
  const hook = await captureServer('fail');
  t.teardown(() => hook.close());
  const env = { SLACK_WEBHOOK_URL: `${hook.url}/services/T0/B0/secret` };
  await withReceiver({ protocol: 'events', faults: { failRate: 1 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { notify: { webhook: { url: '${SLACK_WEBHOOK_URL}', format: 'json' } } }));
    const run = async (expectedCode: number): Promise<string> => {
      const result = await project.cli(['run', 'orders'], { env });
      t.is(result.code, expectedCode, result.stderr);
      return result.stderr;
    };
    // 1: fails; the webhook answers 500: logged, the exit code is the run's own, nothing remembered.
    const first = await run(1);
    t.regex(first, /could not notify webhook \(127\.0\.0\.1:\d+\): answered 500: no_service/);
    t.false(first.includes('secret'), 'the webhook URL is a secret');
    t.is(hook.requests.length, 1);
    hook.answer = 'ok';
    // 2: still failing, and the first failure was never told: told now.
    await run(1);
    // 3: the third failed run in a row: reminded.
    await run(1);
    // 4: nothing new.
    receiver.setFaults({});
    await run(0);
    await run(0);
    const events = hook.requests.slice(1).map((r) => JSON.parse(r.text) as Record<string, any>);
    t.deepEqual(events.map((e) => e.event), ['failed', 'still_failing', 'recovered']);
    t.like(events[0], { job: 'orders', mode: 'run', state: 'failing', previousState: 'ok', failedRunsInARow: 2, run: { exitCode: 1, status: 'failed', counts: { failed: 20 } } });
    t.regex(events[0]!.text, /^convey run orders failed \(exit 1\)\n20 conversions failed after every retry/);
    t.like(events[1], { state: 'failing', failedRunsInARow: 3 });
    t.regex(events[1]!.text, /^convey run orders is still failing: 3 runs in a row, since /);
    t.like(events[2], { state: 'ok', previousState: 'failing', failedRunsInARow: 0, run: { exitCode: 0, counts: { sent: 20 } } });
    t.regex(events[2]!.text, /^convey run orders recovered after 3 failed runs/);
    t.is(hook.requests[1]!.headers['content-type'], 'application/json');
  });
});

test('Slack format: text for the notification, blocks with the cause and counts, escaped', (t) => {
  const summary = { job: 'orders', runId: 3, mode: 'run', status: 'failed', window: null, read: 5, sent: 0, alreadySent: 0, rejected: 0, failed: 5, deferred: 0, skipped: 0, retried: 0, resent: 0, requests: 10, watermark: { before: null, after: null }, durationMs: 900, warnings: [], failures: [] } as RunSummary;
  const body = slackBody('failed', { job: 'orders', mode: 'run', command: 'convey run orders', runId: 3, exitCode: 1, summary, startedAtMs: 0, finishedAtMs: 900 }, { state: 'ok', failures: 0, sinceMs: 0 }, { state: 'failing', failures: 1, sinceMs: 900 }) as { text: string; blocks: Array<{ type: string; text?: { type: string; text: string } }> };
  t.regex(body.text, /^:x: convey run orders failed \(exit 1\)\n5 conversions failed after every retry\nread 5 · sent 0/);
  t.deepEqual(body.blocks.map((b) => b.type), ['section', 'section', 'context']);
  t.is(body.blocks[0]!.text!.text, '*:x: convey run orders failed (exit 1)*');
  t.is(body.blocks[0]!.text!.type, 'mrkdwn');
});

test('the heartbeat: /start once the run holds the job, then the plain URL on success or /<exit code>, with the summary as the body', async (t) => {
  const project = await projectWithRows(t, rows(5));
  const hc = await captureServer('ok');
  t.teardown(() => hc.close());
  const env = { CONVEY_HEARTBEAT_URL: `${hc.url}/ping/abc-{job}` };
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    // A lookback back to March: the second run reads the rows added below.
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { lookback: 'P400D' }));
    t.is((await project.cli(['run', 'orders'], { env })).code, 0);
    receiver.setFaults({ failRate: 1 });
    await insertRows(project, rows(3, '2026-03-02T00:00:00Z', 'n'));
    t.is((await project.cli(['run', 'orders'], { env })).code, 1);
    project.writeJob('broken', CONVERSIONS_SQL.replace('visitor as visitor_id', 'visitor'), eventsJob(receiver));
    t.is((await project.cli(['run', 'broken'], { env })).code, 2);
  });
  t.deepEqual(hc.requests.map((r) => `${r.method} ${r.path}`), [
    'POST /ping/abc-orders/start', 'POST /ping/abc-orders',
    'POST /ping/abc-orders/start', 'POST /ping/abc-orders/1',
    'POST /ping/abc-broken/start', 'POST /ping/abc-broken/2',
  ]);
  t.regex(hc.requests[1]!.text, /^convey run orders succeeded\nread 5 · sent 5 · already sent 0 · rejected 0 · failed 0 · /);
  t.regex(hc.requests[3]!.text, /^convey run orders failed \(exit 1\)\n3 conversions failed after every retry/);
  t.regex(hc.requests[5]!.text, /^convey run broken failed \(exit 2\)\njobs\/broken\.sql: .*visitor_id/);
});

test('GitHub Actions: the run and the plan in the step summary, failures and warnings as annotations on stderr; a broken plan annotates its file', async (t) => {
  const project = await projectWithRows(t, rows(4));
  const dir = tempDir(t, 'convey-gha-');
  const stepSummary = join(dir, 'step-summary.md');
  const env = { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: stepSummary, GITHUB_WORKSPACE: project.dir };
  await withReceiver({ protocol: 'events', faults: { failRate: 1 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const plan = await project.cli(['plan', 'orders'], { env });
    t.is(plan.code, 0, plan.stderr);
    const run = await project.cli(['run', 'orders', '--json'], { env });
    t.is(run.code, 1);
    JSON.parse(run.stdout); // stdout stays the JSON summary alone
    t.regex(run.stderr, /^::error title=convey run orders failed \(exit 1\)::4 conversions failed after every retry/m);
    project.writeJob('broken', CONVERSIONS_SQL.replace('visitor as visitor_id', 'visitor'), eventsJob(receiver));
    const broken = await project.cli(['plan', 'broken'], { env });
    t.is(broken.code, 2);
    t.regex(broken.stderr, /^::error file=jobs\/broken\.sql,title=convey plan broken::jobs\/broken\.sql: .*visitor_id.*%0A/m);
  });
  const markdown = readFileSync(stepSummary, 'utf8');
  t.regex(markdown, /### convey plan orders: Optimizely Event API.*\n\nWindow .*\n\n\| read \| would send \| requests \| already sent \| would reject \|\n\|---:\|---:\|---:\|---:\|---:\|\n\| 4 \| 4 \| 1 \| 0 \| 0 \|/);
  t.regex(markdown, /### ❌ convey run orders failed \(exit 1\)\n\n\*\*4 conversions failed after every retry.*\*\*\n\n\| read \| sent \|.*\n.*\n\| 4 \| 0 \| 0 \| 0 \| 4 \|/);
  t.regex(markdown, /### ❌ convey plan broken: the mapping is broken/);
});

test('GitHub Actions: a command that fails before any run exists (a job file that does not load) is on the job page too, and a failed run is annotated once', async (t) => {
  const project = await projectWithRows(t, rows(2));
  const dir = tempDir(t, 'convey-gha-early-');
  const stepSummary = join(dir, 'step-summary.md');
  const env = { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: stepSummary };
  await withReceiver({ protocol: 'events', faults: { failRate: 1 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 0 }));
    const early = await project.cli(['run', 'orders'], { env });
    t.is(early.code, 2);
    t.regex(early.stderr, /^::error title=convey failed \(exit 2\)%3A CONFIG_INVALID::jobs\/orders\.json: .*batchSize/m);
    t.regex(readFileSync(stepSummary, 'utf8'), /^### ❌ convey failed \(exit 2\): CONFIG_INVALID\n\njobs\/orders\.json: .*batchSize/m);

    // The same early failure inside run --all is annotated with its job's name.
    const all = await project.cli(['run', '--all'], { env });
    t.is(all.code, 2);
    t.regex(all.stderr, /^::error title=convey \(orders\) failed \(exit 2\)%3A CONFIG_INVALID::/m);

    // A run that exists reports through its own channels: one annotation, not a second from the exit path.
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const failed = await project.cli(['run', 'orders'], { env });
    t.is(failed.code, 1);
    t.is(failed.stderr.match(/^::error /gm)?.length, 1, failed.stderr);
    // So does a run that throws once under way (a broken mapping, exit 2).
    project.writeJob('broken', CONVERSIONS_SQL.replace('visitor as visitor_id', 'visitor'), eventsJob(receiver));
    const broken = await project.cli(['run', 'broken'], { env });
    t.is(broken.code, 2);
    t.is(broken.stderr.match(/^::error /gm)?.length, 1, broken.stderr);
    t.regex(broken.stderr, /^::error title=convey run broken failed \(exit 2\)::/m);
  });
});

test('annotations: one ::warning per warning, titled by its check; data and properties escaped as the runner reads them', (t) => {
  const summary = { job: 'orders', runId: 3, mode: 'run', status: 'succeeded', window: null, read: 0, sent: 0, alreadySent: 0, rejected: 0, failed: 0, deferred: 0, skipped: 0, retried: 0, resent: 0, requests: 0, watermark: { before: null, after: null }, durationMs: 900,
    failures: [], warnings: [{ check: 'low_volume', message: 'read 0 rows, usually about 40,000 (100%)\nsecond line', observed: 0 }] } as RunSummary;
  t.deepEqual(runAnnotations({ job: 'orders', mode: 'run', command: 'convey run orders', runId: 3, exitCode: 0, summary, startedAtMs: 0, finishedAtMs: 900 }), [
    '::warning title=convey run orders%3A low_volume::read 0 rows, usually about 40,000 (100%25)%0Asecond line',
  ]);
  t.is(command('error', { file: 'jobs/a,b.sql', title: 'x: y' }, 'a\r\nb'), '::error file=jobs/a%2Cb.sql,title=x%3A y::a%0D%0Ab');
});

test('Prometheus: a text file per job that a real parser reads, replaced whole after each run, with the last run of each mode and the watermark lag', async (t) => {
  const project = await projectWithRows(t, [...rows(6), { ...rows(1, '2026-03-02T00:00:00Z', 'bad')[0]!, revenue: '1.5' }]);
  const dir = tempDir(t, 'convey-textfile-');
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const started = Date.now();
    t.is((await project.cli(['run', 'orders'], { env: { CONVEY_PROMETHEUS_DIR: dir } })).code, 0);
    t.is((await project.cli(['retry', 'orders'], { env: { CONVEY_PROMETHEUS_DIR: dir } })).code, 0);
    const finished = Date.now();
    t.deepEqual(readdirSync(dir), ['convey_orders.prom'], 'no temporary file is left where the collector reads');
    const families = Object.fromEntries(parsePrometheusTextFormat(readFileSync(join(dir, 'convey_orders.prom'), 'utf8')).map((f) => [f.name, f]));
    const value = (name: string, labels: Record<string, string>): number => {
      const family = families[name];
      t.truthy(family, `${name} is in the file`);
      t.is(family!.type, 'GAUGE');
      const sample = family!.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
      t.truthy(sample, `${name}${JSON.stringify(labels)} is in the file`);
      return Number(sample!.value);
    };
    const run = { convey_job: 'orders', mode: 'run' };
    t.is(value('convey_last_run_conversions', { ...run, outcome: 'read' }), 7);
    t.is(value('convey_last_run_conversions', { ...run, outcome: 'sent' }), 6);
    t.is(value('convey_last_run_conversions', { ...run, outcome: 'rejected' }), 1);
    t.is(value('convey_last_run_status', { ...run, status: 'succeeded' }), 1);
    t.is(value('convey_last_run_status', { ...run, status: 'failed' }), 0);
    t.is(value('convey_last_run_status', { convey_job: 'orders', mode: 'retry', status: 'succeeded' }), 1, 'the retry is there too, beside the run');
    const at = value('convey_last_run_timestamp_seconds', run);
    t.true(at * 1000 >= started - 1000 && at * 1000 <= finished + 1000);
    t.true(value('convey_last_run_duration_seconds', run) >= 0);
    t.is(value('convey_last_success_timestamp_seconds', run), at);
    const lag = value('convey_watermark_lag_seconds', { convey_job: 'orders' });
    t.true(lag >= 0 && lag < 120, `lag ${lag}`);
  });
});

test('OTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, the same figures arrive as OTLP/HTTP metrics (JSON, or protobuf by default) with the standard variables applied', async (t) => {
  const project = await projectWithRows(t, rows(3));
  const collector = await captureServer('ok');
  t.teardown(() => collector.close());
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `${collector.url}/otlp/`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc,x-tenant=acme',
    OTEL_SERVICE_NAME: 'convey-nightly',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=production',
  };
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.is((await project.cli(['run', 'orders'], { env })).code, 0);
    await insertRows(project, rows(2, '2026-03-02T00:00:00Z', 'n'));
    t.is((await project.cli(['run', 'orders'], { env: { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: '' } })).code, 0);
  });
  const [json, protobuf] = collector.requests;
  t.is(json!.path, '/otlp/v1/metrics');
  t.is(json!.headers['content-type'], 'application/json');
  t.is(json!.headers.authorization, 'Bearer abc');
  t.is(json!.headers['x-tenant'], 'acme');
  const request = JSON.parse(json!.text) as { resourceMetrics: Array<{ resource: { attributes: Attr[] }; scopeMetrics: Array<{ scope: { name: string }; metrics: Metric[] }> }> };
  type Attr = { key: string; value: { stringValue?: string } };
  type Metric = { name: string; unit: string; gauge: { dataPoints: Array<{ attributes: Attr[]; asDouble: number }> } };
  const resource = Object.fromEntries(request.resourceMetrics[0]!.resource.attributes.map((a) => [a.key, a.value.stringValue]));
  t.like(resource, { 'service.name': 'convey-nightly', 'deployment.environment': 'production' });
  const metrics = request.resourceMetrics[0]!.scopeMetrics[0]!.metrics;
  const conversions = metrics.find((m) => m.name === 'convey.last_run.conversions')!;
  t.is(conversions.unit, '{conversion}');
  const sent = conversions.gauge.dataPoints.find((p) => p.attributes.some((a) => a.key === 'outcome' && a.value.stringValue === 'sent'))!;
  t.is(sent.asDouble, 3);
  t.deepEqual(sent.attributes.find((a) => a.key === 'convey_job')!.value, { stringValue: 'orders' });
  t.truthy(metrics.find((m) => m.name === 'convey.watermark.lag' && m.unit === 's'));
  t.is(protobuf!.headers['content-type'], 'application/x-protobuf');
  t.true(protobuf!.body.includes(Buffer.from('convey.last_run.conversions')), 'protobuf carries the metric names as bytes');
});

test('notify settings are checked at the edge: a URL written in the job file, an unsupported OTLP protocol, a bad format name', async (t) => {
  const project = await projectWithRows(t, []);
  project.writeJob('literal', CONVERSIONS_SQL, { destination: { type: 'optimizely-events', accountId: '1' }, notify: { webhook: { url: 'https://hooks.slack.com/services/T/B/x' } } });
  const literal = await project.cli(['run', 'literal']);
  t.is(literal.code, 2);
  t.regex(literal.stderr, /jobs\/literal\.json: notify\.webhook\.url is written in the file; it is a secret and must come from the environment/);
  t.false(literal.stderr.includes('services/T/B/x'));

  project.writeJob('orders', CONVERSIONS_SQL, { destination: { type: 'optimizely-events', accountId: '1' } });
  // gRPC, set for a whole cluster, does not stop the run: the metrics are not sent, and the run says why.
  const grpc = await project.cli(['run', 'orders'], { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' } });
  t.is(grpc.code, 0, grpc.stderr);
  t.regex(grpc.stderr, /OTEL_EXPORTER_OTLP_PROTOCOL=\\"grpc\\": convey exports metrics over OTLP\/HTTP only/);

  project.writeJob('badformat', CONVERSIONS_SQL, { destination: { type: 'optimizely-events', accountId: '1' }, notify: { webhook: { url: '${HOOK}', format: 'teams' } } });
  const format = await project.cli(['run', 'badformat'], { env: { HOOK: 'https://example.invalid/x' } });
  t.is(format.code, 2);
  t.regex(format.stderr, /jobs\/badformat\.json: notify\.webhook\.format must be one of \\"slack\\", \\"json\\"/);
});
