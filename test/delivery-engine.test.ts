import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { Agent } from 'undici';
import { DeliveryEngine, type DeliveryOptions } from '../src/delivery/engine.ts';
import { MAX_ERROR_BODY_CHARS, splitUrl } from '../src/delivery/http-client.ts';
import type { OutboundRequest, SendResult } from '../src/delivery/request.ts';
import { silentLogger } from '../src/log.ts';
import { systemClock } from '../src/time/clock.ts';

// Real sockets, real clock, small numbers: each test stays well under two seconds. Serial, so
// timing assertions are not disturbed by the other tests' servers.

interface TestServer {
  url: string;
  /** Arrival time (performance.now()) of every request, in order. */
  arrivals: number[];
  /** Most requests the server was handling at the same time. */
  maxActive: number;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

async function startServer(handler: Handler): Promise<TestServer> {
  let active = 0;
  const state: TestServer = {
    url: '',
    arrivals: [],
    maxActive: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    const n = state.arrivals.push(performance.now()) - 1;
    state.maxActive = Math.max(state.maxActive, ++active);
    res.on('close', () => active--);
    // Read the body before answering, as a real endpoint does.
    req.resume();
    req.on('end', () => handler(req, res, n));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

const reply = (res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'text/plain', ...headers });
  res.end(body);
};

function engineFor(options: Partial<DeliveryOptions> = {}): DeliveryEngine {
  return new DeliveryEngine({
    clock: systemClock,
    logger: silentLogger,
    rateLimit: { concurrency: 4 },
    ...options,
  });
}

const post = (url: string, i = 0): OutboundRequest => ({
  method: 'POST',
  url: `${url}/v1/events?i=${i}`,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ account_id: '1', visitors: [{ visitor_id: `v${i}` }] }),
});

/** Small deterministic PRNG (mulberry32), so "30% of answers are 500" is the same every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const count = (results: SendResult[], kind: SendResult['kind']) => results.filter((r) => r.kind === kind).length;

/** A server that answers the first request `status` with `retryAfter`, and the rest with `rest`. */
async function startThrottlingOnce(status: number, retryAfter: string, rest: (res: ServerResponse) => void) {
  let throttledAt = 0;
  const server = await startServer((_req, res, n) => {
    if (n === 0) {
      throttledAt = performance.now();
      reply(res, status, '', { 'retry-after': retryAfter });
    } else rest(res);
  });
  return { server, throttledAt: () => throttledAt };
}

/** No request after the throttled one arrived before its Retry-After of 1 s ran out. */
function assertPauseHeld(t: ExecutionContext, server: TestServer, throttledAt: number): void {
  const later = server.arrivals.slice(1);
  t.true(
    later.every((at) => at - throttledAt >= 990),
    `requests arrived ${later.map((at) => Math.round(at - throttledAt)).join(', ')} ms after the 429`,
  );
}

test.serial('30% of answers are 500: every request is eventually delivered and every attempt counted', async (t) => {
  const random = seeded(42);
  let errors = 0;
  const server = await startServer((_req, res) => {
    if (random() < 0.3) {
      errors++;
      reply(res, 500, 'try again');
    } else reply(res, 204);
  });
  const engine = engineFor({ rateLimit: { concurrency: 8 }, retry: { maxAttempts: 12, baseDelayMs: 5, maxDelayMs: 40 }, random: seeded(7) });
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => engine.send(post(server.url, i))));
  await engine.close();
  await server.close();

  t.is(count(results, 'delivered'), 200, JSON.stringify(results.filter((r) => r.kind !== 'delivered')));
  const attempts = results.reduce((sum, r) => sum + r.attempts, 0);
  t.is(attempts, server.arrivals.length, 'attempts reported = requests the server saw');
  const stats = engine.stats();
  t.is(stats.requests, server.arrivals.length);
  t.is(stats.status5xx, errors);
  t.is(stats.retries, errors);
  t.is(stats.delivered, 200);
  t.true(errors > 40 && errors < 130, `${errors} 500s in ${server.arrivals.length} answers`);
  t.true(stats.maxInFlight <= 8 && server.maxActive <= 8, `in flight ${stats.maxInFlight}, server saw ${server.maxActive}`);
});

test.serial('429 with Retry-After pauses every request, not only the one told; it does not use up an attempt', async (t) => {
  const { server, throttledAt } = await startThrottlingOnce(429, '1', (res) => setTimeout(() => reply(res, 204), 5));
  // maxAttempts 1: had the 429 counted, the first request would fail instead of being retried.
  const engine = engineFor({ rateLimit: { perSecond: 1000, concurrency: 4 }, retry: { maxAttempts: 1 } });
  const first = engine.send(post(server.url, 0));
  await new Promise((r) => setTimeout(r, 50)); // the 429 is back; the pause is on
  const rest = Array.from({ length: 20 }, (_, i) => engine.send(post(server.url, i + 1)));
  const results = [await first, ...(await Promise.all(rest))];
  await engine.close();
  await server.close();

  t.is(count(results, 'delivered'), 21);
  t.like(results[0], { kind: 'delivered', attempts: 2 });
  assertPauseHeld(t, server, throttledAt());
  const stats = engine.stats();
  t.is(stats.status429, 1);
  t.true(stats.pausedMs >= 990 && stats.pausedMs <= 1100, `pausedMs ${stats.pausedMs}`);
  t.is(stats.rateDecreases, 1, 'AIMD took the 429 as a signal too');
  t.is(stats.minEffectiveRate, 700);
});

test.serial('the request waiting for the slot a 429 frees waits out its Retry-After too', async (t) => {
  // Sent together at concurrency 1: the second request takes the slot the moment the 429 is
  // back; it must still not leave during the pause the 429 asked for.
  const { server, throttledAt } = await startThrottlingOnce(429, '1', (res) => reply(res, 204));
  const engine = engineFor({ rateLimit: { concurrency: 1 } });
  const results = await Promise.all([0, 1, 2].map((i) => engine.send(post(server.url, i))));
  await engine.close();
  await server.close();
  t.is(count(results, 'delivered'), 3);
  assertPauseHeld(t, server, throttledAt());
});

test.serial('a Retry-After beyond maxRetryAfterMs is capped', async (t) => {
  const { server, throttledAt } = await startThrottlingOnce(503, new Date(Date.now() + 3_600_000).toUTCString(), (res) => reply(res, 200, 'ok'));
  const engine = engineFor({ retry: { maxRetryAfterMs: 150 } });
  const result = await engine.send(post(server.url));
  await engine.close();
  await server.close();
  t.like(result, { kind: 'delivered', status: 200, attempts: 2 });
  const waited = server.arrivals[1]! - throttledAt();
  t.true(waited >= 145 && waited < 600, `retried after ${Math.round(waited)} ms`);
});

test.serial('a dropped connection is retried', async (t) => {
  const server = await startServer((req, res, n) => {
    if (n === 0) req.socket.destroy();
    else reply(res, 204);
  });
  const engine = engineFor({ retry: { baseDelayMs: 5 } });
  const result = await engine.send(post(server.url));
  await engine.close();
  await server.close();
  t.deepEqual(result, { kind: 'delivered', status: 204, attempts: 2 });
  t.like(engine.stats(), { networkErrors: 1, retries: 1, requests: 2 });
});

test.serial('a stall past headersMs is retried, and fails after maxAttempts with a timeout error', async (t) => {
  let stalledOnce = false;
  const server = await startServer((req, res) => {
    if (req.url?.includes('i=2')) return; // request 2 always stalls
    if (req.url?.includes('i=1') && !stalledOnce) {
      stalledOnce = true; // request 1 stalls once
      return;
    }
    reply(res, 204);
  });
  // undici runs headers/body timeouts on a 500 ms tick, so a 100 ms timeout fires after about
  // 1 s (measured: 3 stalled attempts took 3.01 s): two attempts, side by side, keep this ~2 s.
  const engine = engineFor({ timeouts: { headersMs: 100 }, retry: { maxAttempts: 2, baseDelayMs: 5 } });
  const [once, always] = await Promise.all([engine.send(post(server.url, 1)), engine.send(post(server.url, 2))]);
  await engine.close();
  await server.close();
  t.deepEqual(once, { kind: 'delivered', status: 204, attempts: 2 });
  t.like(always, { kind: 'failed', attempts: 2 });
  t.regex((always as { error: string }).error, /UND_ERR_HEADERS_TIMEOUT/);
  t.like(engine.stats(), { timeouts: 3, failed: 1, delivered: 1 });
});

test.serial('a redirect is not a delivery: the conversion fails (kept for the next run), not recorded sent', async (t) => {
  // Optimizely never redirects; a 3xx comes from a wrong endpoint (http → https, a moved host, a
  // proxy's login page). Nothing was processed, so counting it delivered would lose it silently.
  const server = await startServer((_req, res) => reply(res, 301, '', { location: 'https://logx.example.com/v1/events' }));
  const engine = engineFor({ retry: { maxAttempts: 3, baseDelayMs: 1 } });
  const result = await engine.send(post(server.url));
  await engine.close();
  await server.close();
  t.like(result, { kind: 'failed', status: 301, attempts: 1 });
  t.regex((result as { error: string }).error, /301.*https:\/\/logx\.example\.com\/v1\/events/);
  t.is(server.arrivals.length, 1, 'not retried: the same request gets the same redirect');
  t.like(engine.stats(), { delivered: 0, failed: 1 });
});

test.serial('a 400 is refused with the body and not retried', async (t) => {
  const server = await startServer((_req, res) => reply(res, 400, '{"error":"visitors[0].snapshots is required"}'));
  const engine = engineFor();
  const result = await engine.send(post(server.url));
  await engine.close();
  await server.close();
  t.deepEqual(result, { kind: 'refused', status: 400, body: '{"error":"visitors[0].snapshots is required"}', attempts: 1 });
  t.is(server.arrivals.length, 1);
  t.like(engine.stats(), { refused: 1, retries: 0, requests: 1 });
});

test.serial('a long error body is kept up to its cap, decoded whole; a 2xx cut short is still delivered, not sent again', async (t) => {
  // 'é' is two bytes: the cap counts characters, and no character is split.
  const long = 'é'.repeat(MAX_ERROR_BODY_CHARS + 5000);
  const refusing = await startServer((_req, res) => reply(res, 422, long));
  const engine = engineFor();
  const refused = await engine.send(post(refusing.url));
  await refusing.close();
  t.like(refused, { kind: 'refused', status: 422, attempts: 1 });
  t.is((refused as { body: string }).body, `${'é'.repeat(MAX_ERROR_BODY_CHARS)}…`);

  // The endpoint answered 200 and dropped the connection mid-body: it took the conversion, and
  // a retry would send it twice.
  const cutting = await startServer((_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('partial');
    setTimeout(() => res.destroy(), 20);
  });
  const cut = await engine.send(post(cutting.url));
  await engine.close();
  await cutting.close();
  t.deepEqual(cut, { kind: 'delivered', status: 200, attempts: 1 });
  t.is(cutting.arrivals.length, 1);
});

test.serial('concurrency caps requests in flight, as the server sees them, also while others back off', async (t) => {
  const random = seeded(3);
  const server = await startServer((_req, res) => {
    setTimeout(() => (random() < 0.2 ? reply(res, 503) : reply(res, 204)), 10);
  });
  const engine = engineFor({ rateLimit: { concurrency: 5 }, retry: { maxAttempts: 10, baseDelayMs: 5 } });
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => engine.send(post(server.url, i))));
  await engine.close();
  await server.close();
  t.is(count(results, 'delivered'), 100);
  t.is(server.maxActive, 5, 'the server saw at most (and at some point exactly) 5 at once');
  t.is(engine.stats().maxInFlight, 5);
  t.is(engine.stats().inFlight, 0);
});

test.serial('the rate limit holds against a real server', async (t) => {
  const server = await startServer((_req, res) => reply(res, 204));
  const engine = engineFor({ rateLimit: { perSecond: 100, concurrency: 8 } });
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => engine.send(post(server.url, i))));
  const took = performance.now() - started;
  await engine.close();
  await server.close();
  t.is(count(results, 'delivered'), 60);
  // 1 token at once, then one per 10 ms: 59 intervals.
  t.true(took >= 585 && took < 1500, `60 requests at 100/s took ${Math.round(took)} ms`);
});

test.serial('abort mid-run: requests not started are cancelled at once, those in flight finish', async (t) => {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const server = await startServer((_req, res) => void held.then(() => reply(res, 204)));
  const controller = new AbortController();
  const engine = engineFor({ rateLimit: { concurrency: 4 }, signal: controller.signal });
  const sends = Array.from({ length: 50 }, (_, i) => engine.send(post(server.url, i)));
  while (server.arrivals.length < 4) await new Promise((r) => setTimeout(r, 5));

  controller.abort();
  const settledAt: number[] = [];
  const abortedAt = performance.now();
  const tracked = sends.map((p) => p.then((r) => (settledAt.push(performance.now() - abortedAt), r)));
  await new Promise((r) => setTimeout(r, 50));
  t.is(settledAt.length, 46, 'the 46 that never left settled without waiting for the 4 in flight');
  release();
  const results = await Promise.all(tracked);

  t.is(count(results, 'delivered'), 4);
  t.is(count(results, 'cancelled'), 46);
  t.true(results.every((r) => r.kind !== 'cancelled' || r.attempts === 0));
  t.is(server.arrivals.length, 4);
  t.deepEqual(await engine.send(post(server.url)), { kind: 'cancelled', attempts: 0 }, 'after abort');
  t.like(engine.stats(), { delivered: 4, cancelled: 47, requests: 4, inFlight: 0 });
  await engine.close();
  await server.close();
});

test.serial('abort during backoff or a Retry-After pause: failed "stopped before retry", promptly', async (t) => {
  const server = await startServer((req, res) =>
    req.url?.includes('i=1') ? reply(res, 500, 'down') : reply(res, 429, '', { 'retry-after': '60' }),
  );
  const controller = new AbortController();
  // random 0.999 and a 10 s base: the backoff would last ~10 s if the abort did not cut it.
  const engine = engineFor({ signal: controller.signal, random: () => 0.999, retry: { baseDelayMs: 10_000 } });
  const backingOff = engine.send(post(server.url, 1));
  const paused = engine.send(post(server.url, 2));
  while (server.arrivals.length < 2) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 20));
  const abortedAt = performance.now();
  controller.abort();
  const results = await Promise.all([backingOff, paused]);
  const took = performance.now() - abortedAt;
  await engine.close();
  await server.close();
  t.deepEqual(results[0], { kind: 'failed', error: 'stopped before retry: HTTP 500: down', attempts: 1 });
  t.deepEqual(results[1], { kind: 'failed', error: 'stopped before retry: HTTP 429', attempts: 1 });
  t.true(took < 200, `settled ${Math.round(took)} ms after the abort`);
});

test.serial('abort while waiting for a token: cancelled', async (t) => {
  const server = await startServer((_req, res) => reply(res, 204));
  const controller = new AbortController();
  const engine = engineFor({ rateLimit: { perSecond: 1, concurrency: 4 }, signal: controller.signal });
  const first = engine.send(post(server.url, 1));
  const second = engine.send(post(server.url, 2));
  await new Promise((r) => setTimeout(r, 50));
  controller.abort();
  t.deepEqual(await second, { kind: 'cancelled', attempts: 0 });
  t.like(await first, { kind: 'delivered' });
  await engine.close();
  await server.close();
});

test.serial('close() resolves; an injected dispatcher is left to its owner', async (t) => {
  const server = await startServer((_req, res) => reply(res, 200, 'ok'));
  const dispatcher = new Agent({ connections: 2 });
  const engine = engineFor({ dispatcher });
  t.like(await engine.send({ method: 'GET', url: `${server.url}/event?a=1&n=x&u=y`, headers: {} }), { kind: 'delivered' });
  await engine.close();
  t.false(dispatcher.closed, 'the engine does not close what it was given');
  await dispatcher.close();

  const own = engineFor();
  t.like(await own.send(post(server.url)), { kind: 'delivered' });
  await own.close();
  await t.throwsAsync(own.send(post(server.url)), { message: /after close/ });
  await server.close();
});

test.serial('unknown errors are not retried; a refused connection is', async (t) => {
  const engine = engineFor({ retry: { maxAttempts: 2, baseDelayMs: 1 } });
  const bad = await engine.send({ method: 'GET', url: 'not a url', headers: {} });
  t.like(bad, { kind: 'failed', attempts: 1 });
  // Port 1 on loopback: nothing listens there.
  const refused = await engine.send({ method: 'GET', url: 'http://127.0.0.1:1/event', headers: {} });
  t.like(refused, { kind: 'failed', attempts: 2 });
  t.regex((refused as { error: string }).error, /ECONNREFUSED/);
  t.like(engine.stats(), { otherErrors: 1, networkErrors: 2 });
  await engine.close();
});

test('URLs are split into origin and path without a URL object', (t) => {
  t.deepEqual(splitUrl('https://logx.optimizely.com/v1/events'), { origin: 'https://logx.optimizely.com', path: '/v1/events' });
  t.deepEqual(splitUrl('http://1234567.log.optimizely.com/event?a=1234567&n=example_event'), {
    origin: 'http://1234567.log.optimizely.com',
    path: '/event?a=1234567&n=example_event',
  });
  t.deepEqual(splitUrl('http://127.0.0.1:8080'), { origin: 'http://127.0.0.1:8080', path: '/' });
  t.deepEqual(splitUrl('http://h?x=1'), { origin: 'http://h', path: '/?x=1' });
  t.deepEqual(splitUrl('http://h/p?q=1#frag'), { origin: 'http://h', path: '/p?q=1' });
  t.throws(() => splitUrl('/v1/events'), { message: /not an absolute URL/ });
});
