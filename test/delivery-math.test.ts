import { readFileSync } from 'node:fs';
import test from 'ava';
import { AdaptiveRate } from '../src/delivery/adaptive-rate.ts';
import { DEFAULT_STOP_RUN_AFTER, EndpointBreaker, stopsRun } from '../src/delivery/endpoint-breaker.ts';
import { actionFor, describeCause, endpointOf, firstBytes } from '../src/delivery/failure.ts';
import { DEFAULT_TIMEOUTS } from '../src/delivery/http-client.ts';
import { PauseGate } from '../src/delivery/pause-gate.ts';
import {
  DEFAULT_RETRY_OPTIONS,
  parseRetryAfter,
  resolveRetryOptions,
  RetryPolicy,
  type AttemptOutcome,
  type RetryOptions,
} from '../src/delivery/retry-policy.ts';
import { Slots } from '../src/delivery/slots.ts';
import { TokenBucket } from '../src/delivery/token-bucket.ts';
import { FakeClock, type Clock } from '../src/time/clock.ts';

// ---------------------------------------------------------------- token bucket

/**
 * A clock whose timers fire like Node's: fractional delays rounded up to whole milliseconds, at
 * least 1 ms, and then `lateMs` late. A bucket that schedules from "now" instead of from its
 * virtual next-token time loses throughput on this clock (at 1000/s, about 2/3 of it).
 */
function nodeLikeClock(fake: FakeClock, lateMs: number): Clock {
  return {
    now: () => fake.now(),
    monotonic: () => fake.monotonic(),
    sleep: (ms, signal) => fake.sleep(Math.max(1, Math.ceil(ms)) + lateMs, signal),
  };
}

/** Keep `consumers` callers taking tokens while the fake clock runs for `seconds`; returns grant times. */
async function drive(
  fake: FakeClock,
  bucket: TokenBucket,
  options: { consumers: number; seconds: number; at?: Record<number, () => void> },
): Promise<number[]> {
  const grants: number[] = [];
  let running = true;
  const loops = Array.from({ length: options.consumers }, async () => {
    while (running) {
      await bucket.take();
      if (running) grants.push(fake.monotonic());
    }
  });
  for (let ms = 0; ms < options.seconds * 1000; ms++) {
    options.at?.[ms]?.();
    await fake.advance(1);
  }
  running = false;
  bucket.setRate(Infinity); // release the waiters so the loops end
  await Promise.all(loops);
  return grants;
}

/** Most grants in any half-open window [t, t + 1000) with from ≤ t and t + 1000 ≤ to. */
function maxPerSecond(grants: number[], from = 0, to = Infinity): number {
  const times = grants.filter((t) => t >= from && t < to).sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (j < times.length && times[j]! < times[i]! + 1000) j++;
    if (times[i]! + 1000 <= to) best = Math.max(best, j - i);
  }
  return best;
}

for (const rate of [50, 1000]) {
  for (const lateMs of [0, 1.5]) {
    test(`token bucket at ${rate}/s for 10 s (timers ${lateMs} ms late): ≤ 2% over in any second, ≥ 98% overall`, async (t) => {
      const fake = new FakeClock();
      const bucket = new TokenBucket(nodeLikeClock(fake, lateMs), rate);
      const grants = await drive(fake, bucket, { consumers: 8, seconds: 10 });
      const max = maxPerSecond(grants);
      t.true(max <= rate * 1.02, `max ${max} in one second, limit ${rate}`);
      t.true(grants.length >= rate * 10 * 0.98, `${grants.length} grants in 10 s at ${rate}/s`);
      t.true(grants.length <= rate * 10 * 1.02, `${grants.length} grants in 10 s at ${rate}/s`);
    });
  }
}

test('token bucket burst after idling is at most max(1, rate/200) tokens', async (t) => {
  const fake = new FakeClock();
  for (const [rate, burst] of [
    [50, 1],
    [1000, 5],
    [10_000, 50],
  ] as const) {
    const bucket = new TokenBucket(fake, rate);
    let granted = 0;
    while (bucket.tryTake()) granted++;
    t.is(granted, burst, `rate ${rate}`);
  }
});

test('token bucket setRate mid-way: each half holds its own rate', async (t) => {
  const fake = new FakeClock();
  const bucket = new TokenBucket(nodeLikeClock(fake, 1), 1000);
  const grants = await drive(fake, bucket, { consumers: 8, seconds: 10, at: { 5000: () => bucket.setRate(200) } });
  const first = grants.filter((g) => g < 5000).length;
  const second = grants.filter((g) => g >= 5000).length;
  t.true(maxPerSecond(grants, 0, 5000) <= 1020, `first half max ${maxPerSecond(grants, 0, 5000)}`);
  t.true(maxPerSecond(grants, 5000) <= 204, `second half max ${maxPerSecond(grants, 5000)}`);
  t.true(first >= 0.98 * 5000, `first half ${first}`);
  t.true(second >= 0.98 * 1000 && second <= 1.02 * 1000, `second half ${second}`);
});

test('token bucket serves waiters first come, first served', async (t) => {
  const fake = new FakeClock();
  const bucket = new TokenBucket(fake, 10);
  t.true(bucket.tryTake());
  const order: number[] = [];
  const waits = [0, 1, 2, 3, 4].map((i) => bucket.take().then(() => order.push(i)));
  t.false(bucket.tryTake(), 'a newcomer does not overtake the queue');
  for (let i = 0; i < 10; i++) await fake.advance(100);
  await Promise.all(waits);
  t.deepEqual(order, [0, 1, 2, 3, 4]);
});

test('token bucket: an aborted waiter rejects with the reason and the rest still get tokens', async (t) => {
  const fake = new FakeClock();
  const bucket = new TokenBucket(fake, 10);
  bucket.tryTake();
  const controller = new AbortController();
  const first = bucket.take(controller.signal);
  const second = bucket.take();
  controller.abort(new Error('stop'));
  await t.throwsAsync(first, { message: 'stop' });
  await t.throwsAsync(bucket.take(controller.signal), { message: 'stop' });
  let done = false;
  void second.then(() => (done = true));
  await fake.advance(100);
  t.true(done);
  t.is(bucket.waiting, 0);
});

test('token bucket: raising the rate re-plans a waiter at once (no sleeping out the old interval)', async (t) => {
  const fake = new FakeClock();
  const bucket = new TokenBucket(fake, 1);
  bucket.tryTake();
  let granted = -1;
  void bucket.take().then(() => (granted = fake.monotonic()));
  await fake.advance(10);
  bucket.setRate(1000);
  await fake.advance(10);
  t.true(granted >= 0 && granted <= 20, `granted at ${granted} ms, not at 1000`);
});

// ---------------------------------------------------------------- backoff and Retry-After

const policyWith = (random: () => number, options: Partial<RetryOptions> = {}, now = () => Date.UTC(2026, 0, 1)) =>
  new RetryPolicy(resolveRetryOptions(options), { random, now });

test('backoff is full jitter: random() × min(maxDelayMs, baseDelayMs × 2^(attempt−1))', (t) => {
  for (const r of [0, 0.5, 0.999]) {
    const policy = policyWith(() => r, { baseDelayMs: 250, maxDelayMs: 30_000 });
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(30_000, 250 * 2 ** (attempt - 1));
      const delay = policy.backoffMs(attempt);
      t.is(delay, r * ceiling, `attempt ${attempt}, random ${r}`);
      t.true(delay >= 0 && delay < ceiling, `attempt ${attempt}: ${delay} within [0, ${ceiling})`);
    }
  }
  t.is(policyWith(() => 0.999).backoffMs(20), 0.999 * 30_000, 'capped at maxDelayMs');
});

test('retry defaults: stated once in the code, filled in around what a job sets, and the schema and README say the same', (t) => {
  const defaults = { maxAttempts: 5, baseDelayMs: 250, maxDelayMs: 30_000, maxRetryAfterMs: 300_000, maxThrottledAttempts: 20 };
  t.deepEqual(resolveRetryOptions(), defaults);
  // What a job sets replaces its default and nothing else; an unset key (undefined) keeps it.
  t.deepEqual(resolveRetryOptions({ maxAttempts: 3, baseDelayMs: undefined }), { ...defaults, maxAttempts: 3 });
  t.deepEqual(DEFAULT_RETRY_OPTIONS, defaults, 'a resolve does not change the defaults');
  t.throws(() => resolveRetryOptions({ maxAttempts: 0 }), { message: /retry.maxAttempts must be an integer ≥ 1 \(got 0\)/ });
  t.throws(() => resolveRetryOptions({ baseDelayMs: 100, maxDelayMs: 10 }), { message: /maxDelayMs/ });

  // The job schema (what an editor shows) and the README's settings table repeat the defaults a
  // job gets: they must not drift from the code's.
  const schema = JSON.parse(readFileSync(new URL('../schema/job.schema.json', import.meta.url), 'utf8')) as {
    properties: Record<string, { properties: Record<string, { description: string }> }>;
  };
  const stated = (group: string, key: string): number => Number(/\(default (\d+)\)/.exec(schema.properties[group]!.properties[key]!.description)?.[1]);
  for (const key of ['maxAttempts', 'baseDelayMs', 'maxDelayMs'] as const) t.is(stated('retry', key), DEFAULT_RETRY_OPTIONS[key], `schema retry.${key}`);
  for (const key of ['connectMs', 'headersMs', 'bodyMs'] as const) t.is(stated('timeouts', key), DEFAULT_TIMEOUTS[key], `schema timeouts.${key}`);
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const row = (name: string): number[] => (new RegExp(`^\\| \`${name}[^|]*\\| ([\\d, ]+) \\|`, 'm').exec(readme)?.[1] ?? '').split(',').map(Number);
  t.deepEqual(row('retry.maxAttempts'), [DEFAULT_RETRY_OPTIONS.maxAttempts, DEFAULT_RETRY_OPTIONS.baseDelayMs, DEFAULT_RETRY_OPTIONS.maxDelayMs], 'README retry row');
  t.deepEqual(row('timeouts.connectMs'), [DEFAULT_TIMEOUTS.connectMs, DEFAULT_TIMEOUTS.headersMs, DEFAULT_TIMEOUTS.bodyMs], 'README timeouts row');
  t.is(stated('retry', 'stopRunAfter'), DEFAULT_STOP_RUN_AFTER, 'schema retry.stopRunAfter');
  t.deepEqual(row('retry.stopRunAfter'), [DEFAULT_STOP_RUN_AFTER], 'README stopRunAfter row');
});

test('Retry-After as delta-seconds, as an HTTP date, capped', (t) => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const max = 300_000;
  t.is(parseRetryAfter('120', now, max), 120_000);
  t.is(parseRetryAfter(' 1 ', now, max), 1000);
  t.is(parseRetryAfter('1.5', now, max), 1500);
  t.is(parseRetryAfter('0', now, max), 0);
  t.is(parseRetryAfter('86400', now, max), max, 'capped');
  t.is(parseRetryAfter(new Date(now + 30_000).toUTCString(), now, max), 30_000);
  t.is(parseRetryAfter('Thu, 01 Jan 2026 12:00:45 GMT', now, max), 45_000);
  t.is(parseRetryAfter(new Date(now + 3_600_000).toUTCString(), now, max), max, 'date capped');
  t.is(parseRetryAfter(new Date(now - 5_000).toUTCString(), now, max), 0, 'date in the past');
  t.is(parseRetryAfter(['2', '9'], now, max), 2000);
  t.is(parseRetryAfter(undefined, now, max), undefined);
  t.is(parseRetryAfter('', now, max), undefined);
  t.is(parseRetryAfter('soon', now, max), undefined);
  t.is(parseRetryAfter('-5', now, max), undefined);
  t.is(parseRetryAfter('7 8', now, max), undefined);
});

// ---------------------------------------------------------------- the retry table

const response = (status: number, headers: Record<string, string> = {}, body = ''): AttemptOutcome => ({
  status,
  headers,
  body,
});
const thrown = (code: string, message = 'boom'): AttemptOutcome => ({ error: Object.assign(new Error(message), { code }) });
const fresh = { counted: 0, throttled: 0 };

test('retry table: statuses', (t) => {
  const policy = policyWith(() => 0.5);
  for (const status of [200, 201, 204]) {
    t.is(policy.decide(response(status), fresh).action, 'deliver', `${status}`);
  }
  // A 3xx is the answer of whatever sits at a wrong endpoint, not Optimizely's: nothing was
  // processed. Failed at once (the same URL redirects again), kept for the next run.
  for (const status of [301, 302, 304, 307, 308]) {
    t.like(
      policy.decide(response(status, { location: 'https://user:secret@elsewhere/v1/events?key=k' }), fresh),
      { action: 'fail', status, failure: { cause: `http_${status}`, kind: 'http', status, message: 'redirect to https://elsewhere/v1/events', retryable: false } },
      `${status}`,
    );
  }
  for (const status of [408, 429, 500, 501, 502, 503, 504, 599]) {
    t.like(policy.decide(response(status), fresh), { action: 'retry', failure: { cause: `http_${status}`, retryable: true } }, `${status}`);
  }
  for (const status of [400, 413, 422]) {
    const decision = policy.decide(response(status, {}, `{"error":"bad ${status}"}`), fresh);
    t.deepEqual(decision, { action: 'refuse', status, body: `{"error":"bad ${status}"}` }, `${status}`);
  }
  // The same answer for every conversion (wrong path, method, credentials): failed, not refused.
  for (const status of [401, 403, 404, 405, 409]) {
    t.like(policy.decide(response(status, {}, 'nope'), fresh), { action: 'fail', status, failure: { cause: `http_${status}`, kind: 'http', message: 'nope', retryable: false } }, `${status}`);
  }
});

test('retry table: network errors, timeouts and a DNS resolver that did not answer are retried; TLS, a name that does not exist and anything else fail at once', (t) => {
  const policy = policyWith(() => 0.5);
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'UND_ERR_SOCKET', 'EHOSTUNREACH']) {
    const decision = policy.decide(thrown(code, 'lost'), fresh);
    t.like(decision, { action: 'retry', throttled: false, failure: { cause: `network_${code}`, kind: 'network', code, message: 'lost', retryable: true } }, code);
  }
  t.like(policy.decide(thrown('EAI_AGAIN'), fresh), { action: 'retry', failure: { cause: 'dns_EAI_AGAIN', kind: 'dns', retryable: true } });
  for (const [code, cause] of [
    ['UND_ERR_CONNECT_TIMEOUT', 'timeout_connect'],
    ['UND_ERR_HEADERS_TIMEOUT', 'timeout_headers'],
    ['UND_ERR_BODY_TIMEOUT', 'timeout_body'],
    ['ETIMEDOUT', 'timeout_connect'],
  ] as const) {
    t.like(policy.decide(thrown(code), fresh), { action: 'retry', failure: { cause, kind: 'timeout', code, retryable: true } }, code);
  }
  // Node's happy-eyeballs connect wraps the per-address errors in an AggregateError.
  const aggregate = new AggregateError([Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })], 'connect failed');
  t.like(policy.decide({ error: aggregate }, fresh), { action: 'retry', failure: { kind: 'network', code: 'ECONNREFUSED', message: 'refused' } });
  for (const [code, kind] of [
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls'],
    ['CERT_HAS_EXPIRED', 'tls'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls'],
    ['ENOTFOUND', 'dns'],
    ['UND_ERR_INVALID_ARG', 'other'],
    ['UND_ERR_DESTROYED', 'other'],
    ['ERR_SOMETHING', 'other'],
  ] as const) {
    t.like(policy.decide(thrown(code), fresh), { action: 'fail', failure: { cause: `${kind}_${code}`, kind, code, retryable: false } }, code);
  }
  t.like(policy.decide({ error: new TypeError('bad header') }, fresh), {
    action: 'fail',
    error: 'bad header',
    failure: { cause: 'other', kind: 'other', message: 'bad header', retryable: false },
  });
});

test('retry table: attempts run out at maxAttempts with the last error', (t) => {
  const policy = policyWith(() => 0.5, { maxAttempts: 3, baseDelayMs: 100 });
  t.like(policy.decide(response(500), { counted: 0, throttled: 0 }), { action: 'retry', backoffMs: 50 });
  t.like(policy.decide(response(500), { counted: 1, throttled: 0 }), { action: 'retry', backoffMs: 100 });
  t.deepEqual(policy.decide(response(502, {}, 'bad gateway'), { counted: 2, throttled: 0 }), {
    action: 'fail',
    failure: { cause: 'http_502', kind: 'http', status: 502, message: 'bad gateway', retryable: true },
    status: 502,
    error: 'HTTP 502: bad gateway',
  });
  t.like(policy.decide(thrown('UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error'), { counted: 2, throttled: 0 }), {
    action: 'fail',
    failure: { cause: 'timeout_headers', message: 'Headers Timeout Error' },
    error: 'UND_ERR_HEADERS_TIMEOUT: Headers Timeout Error',
  });
});

test('retry table: 429/503 with Retry-After pause the destination and do not use up attempts', (t) => {
  const now = Date.UTC(2026, 0, 1);
  const policy = policyWith(() => 0.5, { maxAttempts: 2, maxThrottledAttempts: 3, maxRetryAfterMs: 60_000 }, () => now);
  const exhausted = { counted: 1, throttled: 0 };
  t.like(policy.decide(response(429, { 'retry-after': '7' }), exhausted), {
    action: 'retry',
    throttled: true,
    pauseMs: 7000,
    backoffMs: 0,
  });
  t.like(policy.decide(response(503, { 'retry-after': new Date(now + 2000).toUTCString() }), exhausted), {
    action: 'retry',
    throttled: true,
    pauseMs: 2000,
  });
  t.like(policy.decide(response(429, { 'retry-after': '3600' }), fresh), { pauseMs: 60_000 }, 'capped');
  // Retry-After only means something on 429 and 503; a 0 or a past date is no pause at all.
  t.like(policy.decide(response(500, { 'retry-after': '7' }), fresh), { action: 'retry', throttled: false, pauseMs: 0 });
  t.like(policy.decide(response(429, { 'retry-after': '0' }), fresh), { action: 'retry', throttled: false });
  t.like(policy.decide(response(429), exhausted), { action: 'fail', status: 429 });
  // A permanently throttling endpoint still ends.
  t.like(policy.decide(response(429, { 'retry-after': '1' }), { counted: 0, throttled: 3 }), {
    action: 'fail',
    status: 429,
    error: 'HTTP 429 (throttled 4 times; giving up)',
  });
});

// ---------------------------------------------------------------- failures

test('an endpoint is printed without user info or query string: either may hold a key', (t) => {
  t.is(endpointOf('https://logx.optimizely.com/v1/events'), 'https://logx.optimizely.com/v1/events');
  t.is(endpointOf('https://user:secret@proxy.example:8443/v1/events?key=abc#x'), 'https://proxy.example:8443/v1/events');
  t.is(endpointOf('http://1234567.log.optimizely.com/event?a=1234567&n=example_event&u=v1'), 'http://1234567.log.optimizely.com/event');
  t.is(endpointOf('http://h?x=1'), 'http://h');
  t.is(endpointOf('http://a@b@h/p'), 'http://h/p');
  t.is(endpointOf('not a url?key=1'), 'not a url');
});

test('the answer in a failure is its first 200 bytes, never half a character', (t) => {
  t.is(firstBytes('short'), 'short');
  t.is(firstBytes('x'.repeat(200)), 'x'.repeat(200));
  t.is(firstBytes('x'.repeat(201)), `${'x'.repeat(200)}…`);
  // 'é' is two bytes: 100 of them fill the 200 bytes; a 199-byte cut backs up to a whole one.
  t.is(firstBytes('é'.repeat(150)), `${'é'.repeat(100)}…`);
  t.is(firstBytes(`x${'é'.repeat(150)}`), `x${'é'.repeat(99)}…`);
  const failure = policyWith(() => 0.5).decide(response(500, {}, `<html>${'ü'.repeat(300)}</html>`), { counted: 4, throttled: 0 });
  t.like(failure, { action: 'fail', failure: { message: `<html>${'ü'.repeat(97)}…` } });
});

test('each kind of failure says what it is and what to do', (t) => {
  const cases: Array<[Parameters<typeof actionFor>[0], RegExp, RegExp]> = [
    [{ kind: 'tls', code: 'DEPTH_ZERO_SELF_SIGNED_CERT', retryable: false }, /certificate is not trusted/, /NODE_EXTRA_CA_CERTS/],
    [{ kind: 'tls', code: 'CERT_HAS_EXPIRED', retryable: false }, /out of date/, /renew/],
    [{ kind: 'tls', code: 'ERR_SSL_WRONG_VERSION_NUMBER', retryable: false }, /handshake/, /plain HTTP/],
    [{ kind: 'dns', code: 'ENOTFOUND', retryable: false }, /does not resolve/, /typo/],
    [{ kind: 'http', status: 401, retryable: false }, /refused convey's requests \(HTTP 401\)/, /accountId/],
    [{ kind: 'http', status: 404, retryable: false }, /no such endpoint/, /endpoint \(or region\)/],
    [{ kind: 'http', status: 301, retryable: false }, /redirects/, /never redirects/],
    [{ kind: 'http', status: 500, retryable: true }, /failed every attempt/, /passing/],
    [{ kind: 'http', status: 429, retryable: true }, /throttled/, /rateLimit\.perSecond/],
    [{ kind: 'network', code: 'ECONNREFUSED', retryable: true }, /nothing accepts/, /host and port/],
    [{ kind: 'timeout', code: 'UND_ERR_HEADERS_TIMEOUT', retryable: true }, /in time/, /timeouts\.headersMs/],
    [{ kind: 'other', retryable: false }, /does not classify/, /CONVEY_LOG_LEVEL=debug/],
  ];
  for (const [failure, what, action] of cases) {
    t.regex(describeCause(failure), what, JSON.stringify(failure));
    t.regex(actionFor(failure, 'orders'), action, JSON.stringify(failure));
    t.regex(actionFor(failure, 'orders'), /convey retry orders/, 'and the conversions are kept');
  }
});

test('what stops a run: causes about the endpoint that will not pass; never a retryable one, nor one that can be about a single conversion', (t) => {
  const stops: Array<Parameters<typeof stopsRun>[0]> = [
    { kind: 'http', status: 401, retryable: false },
    { kind: 'http', status: 403, retryable: false },
    { kind: 'http', status: 404, retryable: false },
    { kind: 'http', status: 301, retryable: false },
    { kind: 'tls', retryable: false },
    { kind: 'dns', retryable: false },
  ];
  const goesOn: Array<Parameters<typeof stopsRun>[0]> = [
    { kind: 'http', status: 500, retryable: true },
    { kind: 'http', status: 429, retryable: true },
    { kind: 'dns', retryable: true }, // EAI_AGAIN: the resolver did not answer
    { kind: 'network', retryable: true },
    { kind: 'network', retryable: false }, // EADDRNOTAVAIL: out of local ports, passing
    { kind: 'timeout', retryable: true },
    { kind: 'http', status: 414, retryable: false }, // this conversion's URL is too long
    { kind: 'http', status: 431, retryable: false },
    { kind: 'other', retryable: false },
  ];
  for (const failure of stops) t.true(stopsRun(failure), JSON.stringify(failure));
  for (const failure of goesOn) t.false(stopsRun(failure), JSON.stringify(failure));
});

test('endpoint breaker: trips on the n-th failure in a row of one cause; a pass or another cause starts the count again; 0 never trips', (t) => {
  const at = (cause: string, status: number, retryable = false) => ({ cause, kind: 'http' as const, status, message: '', retryable, endpoint: 'http://e/v1/events', at: 0 });
  const breaker = new EndpointBreaker(3);
  t.is(breaker.failed(at('http_401', 401)), undefined);
  t.is(breaker.failed(at('http_401', 401)), undefined);
  breaker.passed(); // a delivery between them
  t.is(breaker.failed(at('http_401', 401)), undefined);
  t.is(breaker.failed(at('http_401', 401)), undefined);
  t.is(breaker.failed(at('http_403', 403)), undefined, 'another cause starts its own count');
  t.is(breaker.failed(at('http_401', 401)), undefined);
  t.is(breaker.failed(at('http_500', 500, true)), undefined, 'a retryable failure that ran out of attempts breaks the streak');
  t.is(breaker.failed(at('http_401', 401)), undefined);
  t.is(breaker.failed(at('http_401', 401)), undefined);
  t.false(breaker.signal.aborted);
  const trip = breaker.failed(at('http_401', 401));
  t.like(trip, { requests: 3, failure: { cause: 'http_401' } });
  t.true(breaker.signal.aborted);
  t.is(breaker.signal.reason, trip);
  t.is(breaker.failed(at('http_401', 401)), undefined, 'trips once');
  t.is(breaker.tripped, trip);

  const never = new EndpointBreaker(0);
  for (let i = 0; i < 1000; i++) never.failed(at('http_401', 401));
  t.false(never.signal.aborted);
  t.is(new EndpointBreaker().failed(at('http_401', 401)), undefined, `the default (${DEFAULT_STOP_RUN_AFTER}) is more than one`);
  t.throws(() => new EndpointBreaker(-1), { message: /retry\.stopRunAfter must be an integer ≥ 0/ });
});

// ---------------------------------------------------------------- AIMD

test('AIMD: a burst of 429s cuts the rate once per second, by 0.7', async (t) => {
  const clock = new FakeClock();
  const changes: number[] = [];
  const rate = new AdaptiveRate({ clock, limit: 100, onChange: (r) => changes.push(r) });
  for (let i = 0; i < 10; i++) rate.onThrottled();
  t.is(rate.current(), 70);
  await clock.advance(999);
  t.false(rate.onThrottled(), 'same window');
  t.is(rate.current(), 70);
  await clock.advance(1);
  t.true(rate.onThrottled());
  t.is(rate.current(), 49);
  t.is(rate.decreases(), 2);
  t.deepEqual(changes, [70, 49]);
});

test('AIMD: recovers toward the limit after quiet seconds, never above it', async (t) => {
  const clock = new FakeClock();
  const rate = new AdaptiveRate({ clock, limit: 100 });
  rate.onThrottled();
  rate.onSuccess();
  t.is(rate.current(), 70, 'no increase within a second of a 429');
  const seen: number[] = [];
  for (let ms = 0; ms < 20_000; ms += 100) {
    await clock.advance(100);
    rate.onSuccess();
    seen.push(rate.current());
  }
  t.is(rate.current(), 100);
  t.true(seen.every((r) => r <= 100));
  t.is(seen.findIndex((r) => r === 100) * 100 + 100, 6000, 'from 70 back to 100 in six 5/s steps');
  t.is(rate.min(), 70);
});

test('AIMD: floor at 1% of the limit (and at least 1/s)', async (t) => {
  const clock = new FakeClock();
  const rate = new AdaptiveRate({ clock, limit: 1000 });
  for (let i = 0; i < 40; i++) {
    rate.onThrottled();
    await clock.advance(1000);
  }
  t.is(rate.current(), 10);
  t.is(rate.min(), 10);
  const slow = new AdaptiveRate({ clock, limit: 20 });
  for (let i = 0; i < 40; i++) {
    slow.onThrottled();
    await clock.advance(1000);
  }
  t.is(slow.current(), 1);
});

test('AIMD unlimited: a 429 limits below the rate sent in the last second; recovery lifts the limit again', async (t) => {
  const clock = new FakeClock();
  const rate = new AdaptiveRate({ clock, limit: Infinity });
  for (let i = 0; i < 100; i++) {
    rate.recordSend();
    await clock.advance(2.5);
  }
  t.false(rate.onThrottled(), 'no full second of sending yet: nothing to cut');
  t.is(rate.current(), Infinity);
  for (let i = 0; i < 500; i++) {
    rate.recordSend();
    await clock.advance(2.5);
  }
  t.true(rate.onThrottled());
  t.is(rate.current(), 280, '0.7 × 400 sent in the last full second');
  for (let s = 0; s < 7; s++) {
    await clock.advance(1000);
    rate.onSuccess();
  }
  t.is(rate.current(), Infinity);
  t.is(rate.min(), 280);
});

// ---------------------------------------------------------------- pause gate

test('pause gate: extends, never shortens, and counts the union of pauses', async (t) => {
  const clock = new FakeClock();
  const gate = new PauseGate(clock);
  t.false(gate.active);
  t.true(gate.pauseFor(1000));
  t.false(gate.pauseFor(500), 'shorter: no change');
  await clock.advance(200);
  t.true(gate.pauseFor(1000), 'extends to 1200');
  t.is(gate.remaining(), 1000);
  await clock.advance(1000);
  t.is(gate.remaining(), 0);
  t.false(gate.active);
  t.is(gate.pausedMs(), 1200);
});

test('token bucket and pause gate: a pause holds newcomers and waiters alike, and the schedule restarts after it', async (t) => {
  const clock = new FakeClock();
  const gate = new PauseGate(clock);
  const bucket = new TokenBucket(clock, 10, gate);
  t.true(bucket.tryTake());
  const grants: number[] = [];
  const granted = (p: Promise<void>): Promise<number> => p.then(() => grants.push(clock.monotonic()));
  // Waiting for tokens due at 100 and 200 ms when the pause begins.
  const waiting = [granted(bucket.take()), granted(bucket.take())];
  await clock.advance(50);
  gate.pauseFor(1000);
  t.false(bucket.tryTake(), 'a newcomer is held');
  waiting.push(granted(bucket.take()));
  // Extended while they wait: still held.
  await clock.advance(500);
  gate.pauseFor(1000);
  for (let ms = 0; ms < 2000; ms += 10) await clock.advance(10);
  await Promise.all(waiting);
  t.deepEqual(grants, [1550, 1650, 1750]);
});

test('token bucket and pause gate: at an unlimited rate too, nothing is granted during a pause', async (t) => {
  const clock = new FakeClock();
  const gate = new PauseGate(clock);
  const bucket = new TokenBucket(clock, Infinity, gate);
  t.true(bucket.tryTake());
  gate.pauseFor(1000);
  t.false(bucket.tryTake());
  const grants: number[] = [];
  const waiting = [bucket.take(), bucket.take()].map((p) => p.then(() => grants.push(clock.monotonic())));
  await clock.advance(999);
  t.deepEqual(grants, []);
  await clock.advance(1);
  await Promise.all(waiting);
  t.deepEqual(grants, [1000, 1000]);
  t.true(bucket.tryTake());
});

test('token bucket and pause gate: a waiter aborted during a pause rejects with the reason', async (t) => {
  const clock = new FakeClock();
  const gate = new PauseGate(clock);
  const bucket = new TokenBucket(clock, Infinity, gate);
  gate.pauseFor(1000);
  const controller = new AbortController();
  const waiting = bucket.take(controller.signal);
  controller.abort(new Error('stop'));
  await t.throwsAsync(waiting, { message: 'stop' });
  t.is(bucket.waiting, 0);
});

// ---------------------------------------------------------------- slots (the concurrency cap)

/** A task per name that runs until `finish(name)`, recording when it started and how many ran at once. */
function controlledTasks() {
  const started: string[] = [];
  const finishers = new Map<string, (ok: boolean) => void>();
  let running = 0;
  let maxRunning = 0;
  const task = (name: string): Promise<string> => {
    started.push(name);
    maxRunning = Math.max(maxRunning, ++running);
    return new Promise((resolve, reject) => {
      finishers.set(name, (ok) => {
        running--;
        if (ok) resolve(`${name} done`);
        else reject(new Error(`${name} failed`));
      });
    });
  };
  const finish = async (name: string, ok = true): Promise<void> => {
    finishers.get(name)!(ok);
    // Let the freed slot pass to the next task.
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { started, task, finish, maxRunning: () => maxRunning };
}

test('slots: at most size run at once; the rest start in arrival order as slots free, also after a failure', async (t) => {
  const slots = new Slots(2);
  const { started, task, finish, maxRunning } = controlledTasks();
  const results = ['a', 'b', 'c', 'd'].map((name) => slots.run(task, name, 'stopped'));
  await finish('a');
  t.deepEqual(started, ['a', 'b', 'c']);
  await finish('b', false);
  t.deepEqual(started, ['a', 'b', 'c', 'd'], 'a failed task gives its slot back too');
  await finish('c');
  await finish('d');
  t.is(maxRunning(), 2);
  t.is(slots.active, 0);
  t.is(await results[0], 'a done');
  await t.throwsAsync(results[1]!, { message: 'b failed' });
  t.deepEqual(await Promise.all([results[2], results[3]]), ['c done', 'd done']);
});

test('slots: stop() turns the waiting tasks away unstarted, running ones finish, later ones never start', async (t) => {
  const slots = new Slots(1);
  const { started, task, finish } = controlledTasks();
  const running = slots.run(task, 'a', 'stopped');
  const waiting = slots.run(task, 'b', 'stopped');
  slots.stop();
  t.is(await waiting, 'stopped');
  t.is(await slots.run(task, 'c', 'stopped'), 'stopped');
  await finish('a');
  t.is(await running, 'a done');
  t.deepEqual(started, ['a']);
});
