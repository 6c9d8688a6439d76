import test, { type ExecutionContext } from 'ava';
import type { JobStatus } from '../src/cli/status-view.ts';
import type { Receiver } from '../src/receiver/server.ts';
import { CONVERSIONS_SQL, classicJob, eventsJob, rows, withReceiver, projectWithRows, type Row, type SummaryJson } from './helpers/fixtures.ts';
import { startGate, type Gate } from './helpers/gate.ts';

// A run whose endpoint refuses every request for a reason that will not pass (here a 401: a bad
// token) stops after `retry.stopRunAfter` requests in a row, reads nothing more, and exits 1 saying
// why. Then the endpoint is fixed, and the next run sends every conversion: each arrives at the
// receiver exactly once over both runs. Real parts: the receiver behind a gate that answers 401
// while closed, convey in this process, the state store of the suite (PostgreSQL or PGlite).

/** `n` rows whose visitor is the conversion id: the receiver sees the visitor, on either protocol. */
const conversions = (n: number, start?: string, prefix?: string): Row[] => rows(n, start, prefix).map((r) => ({ ...r, visitor: r.id }));

/** Every conversion arrived exactly once, over every run. */
function eachOnce(t: ExecutionContext, receiver: Receiver, list: Row[]): void {
  const arrived = receiver.accepted().map((a) => a.visitorId).sort();
  t.is(receiver.stats().duplicates, 0, 'nothing sent twice');
  t.deepEqual(arrived, list.map((r) => r.id).sort(), 'nothing lost');
}

async function behindGate<T>(t: ExecutionContext, protocol: 'events' | 'classic', fn: (receiver: Receiver, gate: Gate, url: string) => Promise<T>): Promise<T> {
  return withReceiver({ protocol }, async (receiver) => {
    const gate = await startGate(receiver.origin, 401);
    t.teardown(() => gate.close());
    return fn(receiver, gate, `${gate.origin}${new URL(receiver.url).pathname}`);
  });
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('classic, 401 to everything: stops after 20 requests in a row (the default), reads no further; fixed, the next run sends every conversion once', async (t) => {
  const list = conversions(200);
  const project = await projectWithRows(t, list);
  await behindGate(t, 'classic', async (receiver, gate, url) => {
    // 8 batches of 25; concurrency 8.
    project.writeJob('orders', CONVERSIONS_SQL, classicJob({ url }, { batchSize: 25 }));
    const first = await project.cli(['run', 'orders', '--json']);
    t.is(first.code, 1, first.stderr);
    const stopped = first.json<SummaryJson>();
    t.like(stopped, { status: 'failed', sent: 0, rejected: 0, stopped: { cause: 'http_401', kind: 'http', status: 401, endpoint: url, message: '{"error":"invalid token"}', requests: 20 } });
    // The 20th failure stopped it; the requests in flight then (at most 7) finished, 401 as well.
    t.true(stopped.failed >= 20 && stopped.failed <= 27, `${stopped.failed} failed`);
    t.is(stopped.requests, stopped.failed, 'one request per failed conversion, none after the stop');
    t.is(gate.refused, stopped.requests);
    t.true(stopped.deferred > 0, 'claimed conversions whose requests never left');
    t.is(stopped.stopped!.notAttempted, stopped.deferred);
    t.is(stopped.stopped!.waiting, stopped.failed + stopped.deferred);
    t.is(stopped.read, stopped.failed + stopped.deferred, 'every row read is claimed and kept');
    t.true(stopped.read <= 50, `read ${stopped.read} of 200: at most the two batches in flight, not the window`);
    t.like(stopped.failures[0], { cause: 'http_401', conversions: stopped.failed, retryable: false });
    t.regex(
      stopped.headline ?? '',
      new RegExp(
        `^stopped after 20 requests in a row failed with http_401 at ${escape(url)} \\(the endpoint refused convey's requests \\(HTTP 401\\)\\): ` +
          `nothing else was sent or read; ${stopped.deferred} conversions were not attempted\\. Check the destination's accountId .*` +
          `Then rerun: the next run sends the ${stopped.read} conversions kept in the ledger first, then reads the rest of the window\\.$`,
      ),
    );
    // The watermark did not pass a row that was not read.
    const firstUnread = list[stopped.read]!.at;
    t.true(stopped.watermark.after === null || Date.parse(stopped.watermark.after) < Date.parse(firstUnread), `${stopped.watermark.after} < ${firstUnread}`);
    t.regex(first.stderr, /"msg":"stopping: 20 requests in a row failed with http_401/);

    // What an on-call engineer reads: the text summary's first line, and status.
    const status = (await project.cli(['status', 'orders', '--json'])).json<{ jobs: JobStatus[] }>().jobs[0]!;
    t.like(status, { state: 'failing', failed: stopped.failed + stopped.deferred, lastFailure: { runId: stopped.runId } });
    t.is(status.lastFailure!.error, stopped.headline!);
    t.regex((await project.cli(['status', 'orders'])).stdout, /error: stopped after 20 requests in a row failed with http_401/);

    // Still broken: the next run stops again on what the ledger holds, before reading the source.
    const again = await project.cli(['run', 'orders']);
    t.is(again.code, 1, again.stderr);
    t.regex(again.stdout.split('\n')[0]!, /^stopped after 20 requests in a row failed with http_401/);
    t.regex(again.stdout, /read +0 rows/);
    t.is(receiver.stats().requests, 0);

    gate.refuse = undefined;
    const fixed = await project.cli(['run', 'orders', '--json']);
    t.is(fixed.code, 0, fixed.stderr);
    t.like(fixed.json<SummaryJson>(), { status: 'succeeded', sent: 200, failed: 0, deferred: 0, retried: stopped.read });
    t.false('stopped' in fixed.json<SummaryJson>());
    eachOnce(t, receiver, list);
    t.is(receiver.stats().requests, 200, 'one request per conversion: none sent twice, none retried');
    t.is(gate.passed, 200);
  });
});

test('Event API, retry.stopRunAfter 5: stops after 5 requests in a row; fixed, every conversion arrives once', async (t) => {
  const list = conversions(100);
  const project = await projectWithRows(t, list);
  await behindGate(t, 'events', async (receiver, gate, url) => {
    // 2 conversions a request: 50 requests for the window; concurrency 4.
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob({ url }, { batchSize: 2, retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5, stopRunAfter: 5 } }));
    const first = await project.cli(['run', 'orders', '--json']);
    t.is(first.code, 1, first.stderr);
    const stopped = first.json<SummaryJson>();
    t.like(stopped, { status: 'failed', sent: 0, stopped: { cause: 'http_401', requests: 5, endpoint: url } });
    t.true(stopped.requests >= 5 && stopped.requests <= 8, `${stopped.requests} requests`);
    t.is(gate.refused, stopped.requests);
    t.is(stopped.failed, stopped.requests * 2);
    t.true(stopped.read < 100, `read ${stopped.read}`);
    t.is(stopped.read, stopped.failed + stopped.deferred);
    t.regex(stopped.headline ?? '', /^stopped after 5 requests in a row failed with http_401/);

    gate.refuse = undefined;
    const fixed = await project.cli(['run', 'orders', '--json']);
    t.is(fixed.code, 0, fixed.stderr);
    t.like(fixed.json<SummaryJson>(), { sent: 100, failed: 0 });
    eachOnce(t, receiver, list);
  });
});

test('backfill, 401 to everything: stops in its first chunk and leaves it unfinished; fixed, the same command finishes every chunk, each conversion once', async (t) => {
  const list = [...conversions(60, '2026-03-01T00:00:00Z', 'a'), ...conversions(60, '2026-03-02T00:00:00Z', 'b')];
  const project = await projectWithRows(t, list);
  await behindGate(t, 'classic', async (receiver, gate, url) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob({ url }, { batchSize: 25 }));
    const backfill = ['backfill', 'orders', '--from', '2026-03-01', '--to', '2026-03-03', '--chunk', 'P1D', '--json'];
    const first = await project.cli(backfill);
    t.is(first.code, 1, first.stderr);
    const stopped = first.json<SummaryJson>();
    t.like(stopped, { mode: 'backfill', status: 'failed', stopped: { cause: 'http_401', requests: 20 }, details: { chunks: 2, chunksDone: 0, complete: false } });
    t.true(stopped.read < 60, `read ${stopped.read}: not past the first chunk`);
    t.regex(stopped.headline ?? '', /the same backfill command then resumes with the chunks left\.$/);

    gate.refuse = undefined;
    const fixed = await project.cli(backfill);
    t.is(fixed.code, 0, fixed.stderr);
    t.like(fixed.json<SummaryJson>(), { failed: 0, details: { resumed: true, chunksDone: 2, complete: true } });
    eachOnce(t, receiver, list);
  });
});

test('an endpoint failing with 500 (retryable) never stops a run early: every conversion is tried', async (t) => {
  const project = await projectWithRows(t, conversions(30));
  await withReceiver({ protocol: 'classic', faults: { failRate: 1 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver, { retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5, stopRunAfter: 3 } }));
    const run = await project.cli(['run', 'orders', '--json']);
    t.is(run.code, 1, run.stderr);
    const summary = run.json<SummaryJson>();
    t.like(summary, { failed: 30, deferred: 0, read: 30, requests: 60 });
    t.false('stopped' in summary);
    t.is(summary.headline, undefined);
  });
});
