import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { Agent } from 'undici';
import { DeliveryEngine, type DeliveryOptions } from '../src/delivery/engine.ts';
import { MAX_ERROR_BODY_CHARS, splitUrl } from '../src/delivery/http-client.ts';
import type { OutboundRequest, SendResult } from '../src/delivery/request.ts';
import { silentLogger } from '../src/log.ts';
import { FakeClock, systemClock } from '../src/time/clock.ts';

// Real sockets, fake time: the engine's clock (token bucket, backoff, Retry-After pauses) is a
// FakeClock that moves only when the test moves it, and only once every request the engine let
// go has reached the server and every answer the server gave has been read (`settle`). So a
// request's arrival time is the exact fake time it left at, and a test of a 10 s backoff takes
// microseconds. Only the HTTP client's own timeouts (undici's timers) run on real time.

interface TestServer {
  url: string;
  /** Arrival time of every request (its body read), in order, on the server's clock. */
  arrivals: number[];
  /** Requests the server has not answered (or dropped) yet. */
  active: number;
  /** Most requests the server was handling at the same time. */
  maxActive: number;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

async function startServer(handler: Handler, now: () => number = () => performance.now()): Promise<TestServer> {
  const state: TestServer = {
    url: '',
    arrivals: [],
    active: 0,
    maxActive: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    state.maxActive = Math.max(state.maxActive, ++state.active);
    // Answered the moment the handler ends or drops the response (not when the socket reports
    // it later), so `settle` never mistakes an answer on its way for one the server holds.
    let open = true;
    const answered = (): void => {
      if (open) state.active--;
      open = false;
    };
    const { end, destroy } = res;
    res.end = ((...args: Parameters<typeof end>) => (answered(), end.apply(res, args))) as typeof end;
    res.destroy = ((...args: Parameters<typeof destroy>) => (answered(), destroy.apply(res, args))) as typeof destroy;
    res.on('close', answered);
    // Read the body before answering, as a real endpoint does; it has arrived once read.
    req.resume();
    req.on('end', () => handler(req, res, state.arrivals.push(now()) - 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

const reply = (res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'text/plain', ...headers });
  res.end(body);
};

/** An engine on a fake clock, and the server it sends to, if any. */
interface Timed {
  clock: FakeClock;
  engine: DeliveryEngine;
  server?: TestServer;
}

/** An engine and a server sharing one fake clock. */
interface Rig {
  clock: FakeClock;
  server: TestServer;
  engine: DeliveryEngine;
  close(): Promise<void>;
}

async function rig(handler: (req: IncomingMessage, res: ServerResponse, n: number, clock: FakeClock) => void, options: Partial<DeliveryOptions> = {}): Promise<Rig> {
  const clock = new FakeClock();
  const server = await startServer((req, res, n) => handler(req, res, n, clock), () => clock.monotonic());
  const engine = new DeliveryEngine({ clock, logger: silentLogger, rateLimit: { concurrency: 4 }, ...options });
  return {
    clock,
    server,
    engine,
    close: async () => {
      await engine.close();
      await server.close();
    },
  };
}

/**
 * Waits (in real time) until nothing is on the wire: every request that left has arrived, and
 * every request in flight is one the server is still holding. Microtasks have run by then, so
 * whatever an answer set off (a backoff, a pause, the next request's token) has happened.
 */
async function settle({ engine, server }: Timed): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    await new Promise((resolve) => setImmediate(resolve));
    const { requests, inFlight } = engine.stats();
    // Without a server (requests to a closed port) only the answers are waited for.
    const arrived = server ? server.arrivals.length : requests;
    const held = server ? server.active : 0;
    if (arrived === requests && inFlight === held) return;
    if (performance.now() > deadline) throw new Error(`not settled: ${requests} sent, ${arrived} arrived, ${inFlight} in flight, ${held} held`);
  }
}

/** Moves fake time on by `ms`, one wake-up at a time, settling after each. */
async function advance(r: Timed, ms: number): Promise<void> {
  const target = r.clock.monotonic() + ms;
  for (;;) {
    await settle(r);
    const next = r.clock.nextWakeUp();
    if (next === undefined || next > target) break;
    await r.clock.advance(next - r.clock.monotonic());
  }
  await r.clock.advance(target - r.clock.monotonic());
  await settle(r);
}

/**
 * Moves fake time on until `work` settles. When nothing sleeps on the clock, only the network
 * can move it (an answer the server is still writing): that is waited for in real time.
 */
async function until<T>(r: Timed, work: Promise<T>): Promise<T> {
  let done = false;
  void work.then(
    () => (done = true),
    () => (done = true),
  );
  const deadline = performance.now() + 10_000;
  for (;;) {
    await settle(r);
    if (done) return work;
    const next = r.clock.nextWakeUp();
    if (next !== undefined) await r.clock.advance(next - r.clock.monotonic());
    else if (performance.now() > deadline) throw new Error('stuck: the sends wait on nothing the clock or the network can wake');
  }
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
const sendAll = (r: Rig, n: number, from = 0): Promise<SendResult[]> => Promise.all(Array.from({ length: n }, (_, i) => r.engine.send(post(r.server.url, from + i))));

/** Answers the first request `status` with `retryAfter`, every later one 204. */
const throttlingFirst =
  (status: number, retryAfter: string) =>
  (_req: IncomingMessage, res: ServerResponse, n: number): void =>
    n === 0 ? reply(res, status, '', { 'retry-after': retryAfter }) : reply(res, 204);

test('30% of answers are 500: every request is eventually delivered and every attempt counted', async (t) => {
  const random = seeded(42);
  let errors = 0;
  const r = await rig(
    (_req, res) => {
      if (random() < 0.3) {
        errors++;
        reply(res, 500, 'try again');
      } else reply(res, 204);
    },
    { rateLimit: { concurrency: 8 }, retry: { maxAttempts: 12, baseDelayMs: 5, maxDelayMs: 40 }, random: seeded(7) },
  );
  const results = await until(r, sendAll(r, 200));
  await r.close();

  t.is(count(results, 'delivered'), 200, JSON.stringify(results.filter((x) => x.kind !== 'delivered')));
  const attempts = results.reduce((sum, x) => sum + x.attempts, 0);
  t.is(attempts, r.server.arrivals.length, 'attempts reported = requests the server saw');
  const stats = r.engine.stats();
  t.is(stats.requests, r.server.arrivals.length);
  t.is(stats.status5xx, errors);
  t.is(stats.retries, errors);
  t.is(stats.delivered, 200);
  t.true(errors > 40 && errors < 130, `${errors} 500s in ${r.server.arrivals.length} answers`);
  t.true(stats.maxInFlight <= 8 && r.server.maxActive <= 8, `in flight ${stats.maxInFlight}, server saw ${r.server.maxActive}`);
});

test('429 with Retry-After pauses every request, not only the one told; it does not use up an attempt', async (t) => {
  // maxAttempts 1: had the 429 counted, the first request would fail instead of being retried.
  const r = await rig(throttlingFirst(429, '1'), { rateLimit: { perSecond: 1000, concurrency: 4 }, retry: { maxAttempts: 1 } });
  const first = r.engine.send(post(r.server.url, 0));
  await advance(r, 50); // the 429 is back; the pause is on
  const rest = sendAll(r, 20, 1);
  const results = [await until(r, first), ...(await until(r, rest))];
  await r.close();

  t.is(count(results, 'delivered'), 21);
  t.like(results[0], { kind: 'delivered', attempts: 2 });
  t.is(r.server.arrivals[0], 0);
  t.true(
    r.server.arrivals.slice(1).every((at) => at >= 1000),
    `requests arrived ${r.server.arrivals.slice(1).join(', ')} ms after the 429`,
  );
  const stats = r.engine.stats();
  t.is(stats.status429, 1);
  t.is(stats.pausedMs, 1000);
  t.is(stats.rateDecreases, 1, 'AIMD took the 429 as a signal too');
  t.is(stats.minEffectiveRate, 700);
});

test('requests holding a slot and waiting for a token when a 429 arrives wait out its Retry-After too', async (t) => {
  // 10/s: the first request leaves at 0 and the next four hold slots, waiting for tokens due at
  // 100, 200, … ms. The 429 to the first asks for a second: none of them may leave before it
  // ends, whatever they were waiting on. (Adaptive off, so the rate stays 10/s and the times
  // after the pause are exact.)
  const r = await rig(throttlingFirst(429, '1'), { rateLimit: { perSecond: 10, concurrency: 8 }, adaptive: false });
  const results = await until(r, sendAll(r, 5));
  await r.close();
  t.is(count(results, 'delivered'), 5);
  // After the pause the schedule starts again from its end: the four, then the first one's retry.
  t.deepEqual(r.server.arrivals, [0, 1000, 1100, 1200, 1300, 1400]);
  t.is(r.engine.stats().pausedMs, 1000);
});

test('1,000 requests at 200/s into 25% 500s, 1% 429s (Retry-After: 1) and 2% drops: nothing leaves during a pause', async (t) => {
  const random = seeded(12);
  const throttledAt: number[] = [];
  const r = await rig(
    (_req, res, _n, clock) => {
      const x = random();
      if (x < 0.01) {
        throttledAt.push(clock.monotonic());
        reply(res, 429, '', { 'retry-after': '1' });
      } else if (x < 0.03) res.destroy();
      else if (x < 0.28) reply(res, 500, 'busy');
      else reply(res, 204);
    },
    { rateLimit: { perSecond: 200, concurrency: 8 }, retry: { maxAttempts: 10 }, random: seeded(5) },
  );
  const results = await until(r, sendAll(r, 1000));
  await r.close();
  t.is(count(results, 'delivered'), 1000);
  t.true(throttledAt.length >= 5, `${throttledAt.length} 429s`);
  // Requests that left at the same instant as the 429 were on the wire with it; any later one
  // before the pause ends broke it.
  const broke = throttledAt.flatMap((at) => r.server.arrivals.filter((a) => a > at && a < at + 1000).map((a) => `${Math.round(a - at)} ms after the 429 at ${Math.round(at)} ms`));
  t.deepEqual(broke, []);
});

test('the request waiting for the slot a 429 frees waits out its Retry-After too', async (t) => {
  // Sent together at concurrency 1: the second request takes the slot the moment the 429 is
  // back; it must still not leave during the pause the 429 asked for.
  const r = await rig(throttlingFirst(429, '1'), { rateLimit: { concurrency: 1 } });
  const results = await until(r, sendAll(r, 3));
  await r.close();
  t.is(count(results, 'delivered'), 3);
  t.deepEqual(r.server.arrivals, [0, 1000, 1000, 1000]);
});

test('a Retry-After beyond maxRetryAfterMs is capped', async (t) => {
  let date = '';
  const r = await rig((_req, res, n, clock) => {
    date ||= new Date(clock.now() + 3_600_000).toUTCString();
    if (n === 0) reply(res, 503, '', { 'retry-after': date });
    else reply(res, 200, 'ok');
  }, { retry: { maxRetryAfterMs: 150 } });
  const result = await until(r, r.engine.send(post(r.server.url)));
  await r.close();
  t.like(result, { kind: 'delivered', status: 200, attempts: 2 });
  t.deepEqual(r.server.arrivals, [0, 150], `an hour asked for (${date}), 150 ms waited`);
});

test('a dropped connection is retried after its backoff', async (t) => {
  const r = await rig(
    (_req, res, n) => {
      if (n === 0) res.destroy();
      else reply(res, 204);
    },
    { retry: { baseDelayMs: 8 }, random: () => 0.5 },
  );
  const result = await until(r, r.engine.send(post(r.server.url)));
  await r.close();
  t.deepEqual(result, { kind: 'delivered', status: 204, attempts: 2 });
  t.deepEqual(r.server.arrivals, [0, 4], 'full jitter: 0.5 × 8 ms');
  t.like(r.engine.stats(), { networkErrors: 1, retries: 1, requests: 2 });
});

test.serial('a stall past headersMs is retried, and fails after maxAttempts with a timeout error', async (t) => {
  // undici's own timers, on real time: the one test here that is not on the fake clock.
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
  const engine = new DeliveryEngine({
    clock: systemClock,
    logger: silentLogger,
    rateLimit: { concurrency: 4 },
    timeouts: { headersMs: 100 },
    retry: { maxAttempts: 2, baseDelayMs: 5 },
  });
  const [once, always] = await Promise.all([engine.send(post(server.url, 1)), engine.send(post(server.url, 2))]);
  await engine.close();
  await server.close();
  t.deepEqual(once, { kind: 'delivered', status: 204, attempts: 2 });
  t.like(always, { kind: 'failed', attempts: 2 });
  t.regex((always as { error: string }).error, /UND_ERR_HEADERS_TIMEOUT/);
  t.like(engine.stats(), { timeouts: 3, failed: 1, delivered: 1 });
});

test('a redirect is not a delivery: the conversion fails (kept for the next run), not recorded sent', async (t) => {
  // Optimizely never redirects; a 3xx comes from a wrong endpoint (http → https, a moved host, a
  // proxy's login page). Nothing was processed, so counting it delivered would lose it silently.
  const r = await rig((_req, res) => reply(res, 301, '', { location: 'https://logx.example.com/v1/events' }), { retry: { maxAttempts: 3, baseDelayMs: 1 } });
  const result = await until(r, r.engine.send(post(r.server.url)));
  await r.close();
  t.like(result, { kind: 'failed', status: 301, attempts: 1 });
  t.regex((result as { error: string }).error, /301.*https:\/\/logx\.example\.com\/v1\/events/);
  t.is(r.server.arrivals.length, 1, 'not retried: the same request gets the same redirect');
  t.like(r.engine.stats(), { delivered: 0, failed: 1 });
});

test('a 400 is refused with the body and not retried', async (t) => {
  const r = await rig((_req, res) => reply(res, 400, '{"error":"visitors[0].snapshots is required"}'));
  const result = await until(r, r.engine.send(post(r.server.url)));
  await r.close();
  t.deepEqual(result, { kind: 'refused', status: 400, body: '{"error":"visitors[0].snapshots is required"}', attempts: 1 });
  t.is(r.server.arrivals.length, 1);
  t.like(r.engine.stats(), { refused: 1, retries: 0, requests: 1 });
});

test('a long error body is kept up to its cap, decoded whole; a 2xx cut short is still delivered, not sent again', async (t) => {
  // 'é' is two bytes: the cap counts characters, and no character is split.
  const long = 'é'.repeat(MAX_ERROR_BODY_CHARS + 5000);
  const refusing = await rig((_req, res) => reply(res, 422, long));
  const refused = await until(refusing, refusing.engine.send(post(refusing.server.url)));
  await refusing.close();
  t.like(refused, { kind: 'refused', status: 422, attempts: 1 });
  t.is((refused as { body: string }).body, `${'é'.repeat(MAX_ERROR_BODY_CHARS)}…`);

  // The endpoint answered 200 and dropped the connection mid-body: it took the conversion, and
  // a retry would send it twice.
  const cutting = await rig((_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('partial', () => res.destroy());
  });
  const cut = await until(cutting, cutting.engine.send(post(cutting.server.url)));
  await cutting.close();
  t.deepEqual(cut, { kind: 'delivered', status: 200, attempts: 1 });
  t.is(cutting.server.arrivals.length, 1);
});

test('concurrency caps requests in flight, as the server sees them, also while others back off', async (t) => {
  const random = seeded(3);
  // Each answer takes 10 ms of fake time, so requests overlap at the server.
  const r = await rig((_req, res, _n, clock) => void clock.sleep(10).then(() => (random() < 0.2 ? reply(res, 503) : reply(res, 204))), {
    rateLimit: { concurrency: 5 },
    retry: { maxAttempts: 10, baseDelayMs: 5 },
  });
  const results = await until(r, sendAll(r, 100));
  await r.close();
  t.is(count(results, 'delivered'), 100);
  t.is(r.server.maxActive, 5, 'the server saw at most (and at some point exactly) 5 at once');
  t.is(r.engine.stats().maxInFlight, 5);
  t.is(r.engine.stats().inFlight, 0);
});

test('the rate limit holds against a real server', async (t) => {
  const r = await rig((_req, res) => reply(res, 204), { rateLimit: { perSecond: 100, concurrency: 8 } });
  const results = await until(r, sendAll(r, 60));
  await r.close();
  t.is(count(results, 'delivered'), 60);
  // 1 token at once, then one per 10 ms: 59 intervals.
  t.deepEqual(r.server.arrivals, Array.from({ length: 60 }, (_, i) => i * 10));
});

test('abort mid-run: requests not started are cancelled at once, those in flight finish', async (t) => {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const controller = new AbortController();
  const r = await rig((_req, res) => void held.then(() => reply(res, 204)), { rateLimit: { concurrency: 4 }, signal: controller.signal });
  const settled: SendResult[] = [];
  const sends = Array.from({ length: 50 }, (_, i) => r.engine.send(post(r.server.url, i)).then((result) => (settled.push(result), result)));
  await settle(r);
  t.is(r.server.arrivals.length, 4);

  controller.abort();
  await settle(r);
  t.is(settled.length, 46, 'the 46 that never left settled without waiting for the 4 in flight, and without time passing');
  release();
  const results = await until(r, Promise.all(sends));

  t.is(count(results, 'delivered'), 4);
  t.is(count(results, 'cancelled'), 46);
  t.true(results.every((x) => x.kind !== 'cancelled' || x.attempts === 0));
  t.is(r.server.arrivals.length, 4);
  t.deepEqual(await r.engine.send(post(r.server.url)), { kind: 'cancelled', attempts: 0 }, 'after abort');
  t.like(r.engine.stats(), { delivered: 4, cancelled: 47, requests: 4, inFlight: 0 });
  t.is(r.clock.monotonic(), 0);
  await r.close();
});

test('abort during backoff or a Retry-After pause: failed "stopped before retry", at once', async (t) => {
  const controller = new AbortController();
  // random 0.999 and a 10 s base: the backoff would last ~10 s if the abort did not cut it.
  const r = await rig((req, res) => (req.url?.includes('i=1') ? reply(res, 500, 'down') : reply(res, 429, '', { 'retry-after': '60' })), {
    signal: controller.signal,
    random: () => 0.999,
    retry: { baseDelayMs: 10_000 },
  });
  const sends = Promise.all([r.engine.send(post(r.server.url, 1)), r.engine.send(post(r.server.url, 2))]);
  await advance(r, 20);
  controller.abort();
  const results = await until(r, sends);
  await r.close();
  t.like(results[0], { kind: 'failed', error: 'stopped before retry: HTTP 500: down', attempts: 1 });
  t.like(results[1], { kind: 'failed', error: 'stopped before retry: HTTP 429', attempts: 1 });
  t.is(r.clock.monotonic(), 20, 'settled the moment it was told, not after the backoff or the pause');
  t.is(r.server.arrivals.length, 2);
});

test('abort while waiting for a token: cancelled', async (t) => {
  const controller = new AbortController();
  const r = await rig((_req, res) => reply(res, 204), { rateLimit: { perSecond: 1, concurrency: 4 }, signal: controller.signal });
  const first = r.engine.send(post(r.server.url, 1));
  const second = r.engine.send(post(r.server.url, 2));
  await advance(r, 50);
  controller.abort();
  t.deepEqual(await until(r, second), { kind: 'cancelled', attempts: 0 });
  t.like(await until(r, first), { kind: 'delivered' });
  t.deepEqual(r.server.arrivals, [0]);
  await r.close();
});

test('an endpoint answering 401 to everything: after stopRunAfter failures in a row the engine stops, like an abort', async (t) => {
  const r = await rig((_req, res) => reply(res, 401, '{"error":"invalid token"}'), { rateLimit: { concurrency: 4 }, stopRunAfter: 5 });
  const results = await until(r, sendAll(r, 50));
  t.deepEqual(await r.engine.send(post(r.server.url, 50)), { kind: 'cancelled', attempts: 0 }, 'and it stays stopped');
  await r.close();
  const failed = count(results, 'failed');
  // The 5th failure trips it; the (at most 3) requests in flight then finish, all 401 too.
  t.true(failed >= 5 && failed <= 8, `${failed} failed`);
  t.is(count(results, 'cancelled'), 50 - failed, 'the rest never left');
  t.is(r.server.arrivals.length, failed);
  t.like(r.engine.breaker.tripped, { requests: 5, failure: { cause: 'http_401', status: 401, endpoint: `${r.server.url}/v1/events`, retryable: false } });
  t.true(r.engine.breaker.signal.aborted);
  t.like(r.engine.stats(), { failed, cancelled: 50 - failed + 1, requests: failed });
});

test('the breaker: a delivery between failures resets the count; 500s and retries never trip it; 0 turns it off', async (t) => {
  // One request at a time, so "in a row" is the order the server saw: every 4th is delivered.
  const every4th = await rig((_req, res, n) => (n % 4 === 3 ? reply(res, 204) : reply(res, 401)), { rateLimit: { concurrency: 1 }, stopRunAfter: 4 });
  const mixed = await until(every4th, sendAll(every4th, 40));
  await every4th.close();
  t.is(count(mixed, 'delivered'), 10);
  t.is(count(mixed, 'failed'), 30);
  t.is(every4th.engine.breaker.tripped, undefined);

  const down = await rig((_req, res) => reply(res, 500, 'down'), { rateLimit: { concurrency: 4 }, stopRunAfter: 2, retry: { maxAttempts: 2, baseDelayMs: 1 } });
  const failing = await until(down, sendAll(down, 30));
  await down.close();
  t.is(count(failing, 'failed'), 30, 'every request tried, each maxAttempts times');
  t.is(down.server.arrivals.length, 60);
  t.is(down.engine.breaker.tripped, undefined);

  const off = await rig((_req, res) => reply(res, 403), { rateLimit: { concurrency: 4 }, stopRunAfter: 0 });
  const refused = await until(off, sendAll(off, 60));
  await off.close();
  t.is(count(refused, 'failed'), 60);
  t.is(off.engine.breaker.tripped, undefined);
});

test('close() resolves; an injected dispatcher is left to its owner', async (t) => {
  const dispatcher = new Agent({ connections: 2 });
  const injected = await rig((_req, res) => reply(res, 200, 'ok'), { dispatcher });
  t.like(await until(injected, injected.engine.send({ method: 'GET', url: `${injected.server.url}/event?a=1&n=x&u=y`, headers: {} })), { kind: 'delivered' });
  await injected.close();
  t.false(dispatcher.closed, 'the engine does not close what it was given');
  await dispatcher.close();

  const own = await rig((_req, res) => reply(res, 200, 'ok'));
  t.like(await until(own, own.engine.send(post(own.server.url))), { kind: 'delivered' });
  await own.engine.close();
  await t.throwsAsync(own.engine.send(post(own.server.url)), { message: /after close/ });
  await own.server.close();
});

test('unknown errors are not retried; a refused connection is', async (t) => {
  const clock = new FakeClock();
  const engine = new DeliveryEngine({ clock, logger: silentLogger, rateLimit: { concurrency: 4 }, retry: { maxAttempts: 2, baseDelayMs: 1 } });
  const bad = await until({ clock, engine }, engine.send({ method: 'GET', url: 'not a url', headers: {} }));
  t.like(bad, { kind: 'failed', attempts: 1 });
  // Port 1 on loopback: nothing listens there.
  const refused = await until({ clock, engine }, engine.send({ method: 'GET', url: 'http://127.0.0.1:1/event?a=1&u=visitor', headers: {} }));
  t.like(refused, { kind: 'failed', attempts: 2 });
  t.regex((refused as { error: string }).error, /ECONNREFUSED/);
  // The failure says what, where (without the query, which is the conversion) and when.
  t.like(refused, { failure: { cause: 'network_ECONNREFUSED', kind: 'network', code: 'ECONNREFUSED', endpoint: 'http://127.0.0.1:1/event', retryable: true, at: clock.now() } });
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
