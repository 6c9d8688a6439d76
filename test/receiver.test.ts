import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import test from 'ava';
import { request } from 'undici';
import { receiverCommand } from '../src/cli/commands/receiver.ts';
import type { CliIO } from '../src/cli/io.ts';
import { isConveyError } from '../src/errors.ts';
import { silentLogger } from '../src/log.ts';
import { FaultPlan } from '../src/receiver/faults.ts';
import { RateWindow } from '../src/receiver/rate-window.ts';
import { MAX_EVENT_BATCH_BYTES, startReceiver, type Receiver, type ReceiverOptions } from '../src/receiver/server.ts';

const SEED_QUERY =
  'a=1234567&n=example_event&u=oeu1316548451038r0.12412704364396632&x987654321=1111111&x876543210=2222222_3333333&v=500&g=1234567';

async function withReceiver(options: ReceiverOptions, run: (receiver: Receiver) => Promise<void>): Promise<void> {
  const receiver = await startReceiver(options);
  try {
    await run(receiver);
  } finally {
    await receiver.close();
  }
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'convey-receiver-'));
}

async function get(receiver: Receiver, query: string, headers: Record<string, string> = {}) {
  const res = await request(`${receiver.url}?${query}`, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as { error: string; reasons: string[] } };
}

async function post(
  receiver: Receiver,
  body: unknown,
  options: { strict?: boolean; contentType?: string; headersTimeout?: number; url?: string } = {},
) {
  const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json' };
  if (options.strict ?? true) headers['x-optimizely-strict'] = 'true';
  const res = await request(options.url ?? receiver.url, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(options.headersTimeout === undefined ? {} : { headersTimeout: options.headersTimeout }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as { error: string; reasons: string[] } };
}

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z in ms

function uuidFor(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

function event(n: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { entity_id: '5551234', key: 'purchase', timestamp: T0 + n * 1000, uuid: uuidFor(n), revenue: 1999, ...overrides };
}

/** A valid batch: one visitor per event, as convey sends them. */
function batch(events: Array<Record<string, unknown>>, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    account_id: '12345',
    project_id: '67890',
    anonymize_ip: true,
    client_name: 'convey/test',
    client_version: '0.1.0',
    enrich_decisions: true,
    visitors: events.map((e, i) => ({
      visitor_id: `user-${i}`,
      attributes: [{ type: 'custom', entity_id: '111', key: 'plan', value: 'pro' }],
      snapshots: [{ decisions: [{ campaign_id: '1', experiment_id: '2', variation_id: '3' }], events: [e] }],
    })),
    ...overrides,
  };
}

// ---------------------------------------------------------------------------------------------
// Classic

test('classic: the seed example is accepted and recorded with its parameters in order', async (t) => {
  const dir = await tempDir();
  const record = join(dir, 'accepted.ndjson');
  await withReceiver({ protocol: 'classic', record }, async (receiver) => {
    t.regex(receiver.url, /^http:\/\/127\.0\.0\.1:\d+\/event$/);
    const res = await get(receiver, SEED_QUERY, { host: '1234567.log.optimizely.com' });
    t.is(res.status, 200);
    const [conversion, ...rest] = receiver.accepted();
    t.is(rest.length, 0);
    t.like(conversion, { protocol: 'classic', visitorId: 'oeu1316548451038r0.12412704364396632', eventKey: 'example_event', revenue: 500, duplicate: false });
    t.deepEqual(conversion?.raw, [
      ['a', '1234567'],
      ['n', 'example_event'],
      ['u', 'oeu1316548451038r0.12412704364396632'],
      ['x987654321', '1111111'],
      ['x876543210', '2222222_3333333'],
      ['v', '500'],
      ['g', '1234567'],
    ]);
    t.like(receiver.stats(), { requests: 1, acceptedRequests: 1, invalidRequests: 0, conversions: 1, unique: 1, duplicates: 0 });
  });
  const lines = (await readFile(record, 'utf8')).trim().split('\n');
  t.is(lines.length, 1);
  const recorded = JSON.parse(lines[0]!) as { raw: unknown; eventKey: string };
  t.is(recorded.eventKey, 'example_event');
  t.deepEqual((recorded.raw as string[][]).map(([name]) => name), ['a', 'n', 'u', 'x987654321', 'x876543210', 'v', 'g']);
  await rm(dir, { recursive: true, force: true });
});

test('classic: `time` in seconds becomes the conversion timestamp; percent-encoding is decoded', async (t) => {
  await withReceiver({ protocol: 'classic' }, async (receiver) => {
    const res = await get(receiver, `${SEED_QUERY.replace('n=example_event', 'n=add%20to+cart')}&time=1767225600&s983745985=gc&d=42&src=python-sdk-0.1.0`);
    t.is(res.status, 200, res.text);
    t.like(receiver.accepted()[0], { eventKey: 'add to cart', timestamp: 1_767_225_600_000 });
  });
});

const classicBreaks: Array<[string, string, RegExp]> = [
  ['missing u', SEED_QUERY.replace('&u=oeu1316548451038r0.12412704364396632', ''), /^u: required/],
  ['revenue with a decimal point', SEED_QUERY.replace('v=500', 'v=5.00'), /^v: must be integer cents.*got "5\.00"/],
  ['time in milliseconds', `${SEED_QUERY}&time=1767225600000`, /^time: must be epoch seconds \(10 digits\), got 1767225600000 \(milliseconds\?\)/],
  ['an unknown parameter', `${SEED_QUERY}&revenue=500`, /^revenue: unknown parameter/],
  ['a non-numeric variation', SEED_QUERY.replace('x987654321=1111111', 'x123=abc'), /^x123: variation id must be digits/],
  ['no experiment at all', 'a=1234567&n=example_event&u=user1', /^x\{experimentId\}: at least one/],
  ['a parameter given twice', `${SEED_QUERY}&n=other`, /^n: given more than once/],
];

for (const [name, query, reason] of classicBreaks) {
  test(`classic: ${name} is refused with 400 naming the parameter`, async (t) => {
    await withReceiver({ protocol: 'classic' }, async (receiver) => {
      const res = await get(receiver, query);
      t.is(res.status, 400);
      t.regex(res.json().error, reason);
      t.deepEqual(receiver.accepted(), []);
      t.like(receiver.stats(), { invalidRequests: 1, acceptedRequests: 0, conversions: 0 });
      t.regex(receiver.invalid()[0]?.reason ?? '', reason);
    });
  });
}

test('classic: `a` must match the project in a {project}.log.optimizely.com host', async (t) => {
  await withReceiver({ protocol: 'classic' }, async (receiver) => {
    const res = await get(receiver, SEED_QUERY, { host: '7654321.log.optimizely.com' });
    t.is(res.status, 400);
    t.regex(res.json().error, /^a: must equal the project id in the host name 7654321\.log\.optimizely\.com/);
  });
});

test('classic: lenient answers 200 like the real endpoint but does not accept the call', async (t) => {
  await withReceiver({ protocol: 'classic', lenient: true }, async (receiver) => {
    const res = await get(receiver, SEED_QUERY.replace('v=500', 'v=5.00'));
    t.is(res.status, 200);
    t.deepEqual(receiver.accepted(), []);
    t.like(receiver.stats(), { invalidRequests: 1, acceptedRequests: 0 });
  });
});

test('classic: the same query string twice is one unique conversion and one duplicate', async (t) => {
  await withReceiver({ protocol: 'classic' }, async (receiver) => {
    t.is((await get(receiver, SEED_QUERY)).status, 200);
    t.is((await get(receiver, SEED_QUERY)).status, 200);
    t.is((await get(receiver, `${SEED_QUERY}&time=1767225600`)).status, 200);
    t.like(receiver.stats(), { conversions: 3, unique: 2, duplicates: 1 });
    t.deepEqual(receiver.accepted().map((c) => c.duplicate), [false, true, false]);
  });
});

test('classic: wrong path is 404 and wrong method is 405, both counted as invalid', async (t) => {
  await withReceiver({ protocol: 'classic' }, async (receiver) => {
    const notFound = await request(`${receiver.origin}/v1/events`, { method: 'POST', body: '{}' });
    t.is(notFound.statusCode, 404);
    t.regex(((await notFound.body.json()) as { error: string }).error, /speaks classic/);
    const wrongMethod = await request(`${receiver.url}?${SEED_QUERY}`, { method: 'POST', body: '' });
    t.is(wrongMethod.statusCode, 405);
    t.is(wrongMethod.headers['allow'], 'GET');
    await wrongMethod.body.text();
    t.like(receiver.stats(), { requests: 2, invalidRequests: 2, acceptedRequests: 0 });
  });
});

// ---------------------------------------------------------------------------------------------
// Event API

test('events: a valid batch is 204 with no body and every event is recorded with its visitor', async (t) => {
  const dir = await tempDir();
  const record = join(dir, 'accepted.ndjson');
  await withReceiver({ protocol: 'events', record }, async (receiver) => {
    t.regex(receiver.url, /^http:\/\/127\.0\.0\.1:\d+\/v1\/events$/);
    const body = batch([event(1), event(2), event(3, { revenue: undefined, key: undefined })]);
    const res = await post(receiver, body);
    t.is(res.status, 204);
    t.is(res.text, '');
    const accepted = receiver.accepted();
    t.deepEqual(accepted.map((c) => c.uuid), [uuidFor(1), uuidFor(2), uuidFor(3)]);
    t.deepEqual(accepted.map((c) => c.visitorId), ['user-0', 'user-1', 'user-2']);
    t.deepEqual(accepted.map((c) => c.timestamp), [T0 + 1000, T0 + 2000, T0 + 3000]);
    t.deepEqual(accepted.map((c) => c.revenue), [1999, 1999, undefined]);
    t.like(accepted[0], { protocol: 'events', entityId: '5551234', eventKey: 'purchase', duplicate: false });
    // The raw form is the envelope plus this visitor with only this event: what Optimizely stores.
    const raw = accepted[1]?.raw as { account_id: string; visitors?: unknown; visitor: { visitor_id: string; snapshots: Array<{ decisions: unknown; events: unknown[] }> } };
    t.is(raw.account_id, '12345');
    t.is(raw.visitors, undefined);
    t.is(raw.visitor.visitor_id, 'user-1');
    t.deepEqual(raw.visitor.snapshots[0]?.events, [event(2)]);
    t.deepEqual(raw.visitor.snapshots[0]?.decisions, [{ campaign_id: '1', experiment_id: '2', variation_id: '3' }]);
    const stats = receiver.stats();
    t.like(stats, { requests: 1, acceptedRequests: 1, conversions: 3, unique: 3 });
    t.is(stats.bytes, Buffer.byteLength(JSON.stringify(body)));
    t.true(stats.maxRequestsPerSecond > 0);
    t.is(stats.maxConversionsPerSecond, 3);
  });
  const lines = (await readFile(record, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { uuid: string });
  t.deepEqual(lines.map((l) => l.uuid), [uuidFor(1), uuidFor(2), uuidFor(3)]);
  await rm(dir, { recursive: true, force: true });
});

const eventBreaks: Array<[string, () => Record<string, unknown>, RegExp]> = [
  [
    'a timestamp in seconds',
    () => batch([event(1), event(2, { timestamp: 1_767_225_600 })]),
    /^visitors\[1\]\.snapshots\[0\]\.events\[0\]\.timestamp: must be epoch milliseconds \(13 digits\), got 1767225600 \(seconds\?\)$/,
  ],
  ['a float revenue', () => batch([event(1, { revenue: 5.5 })]), /^visitors\[0\]\.snapshots\[0\]\.events\[0\]\.revenue: must be integer cents/],
  ['a string revenue', () => batch([event(1, { revenue: '500' })]), /^visitors\[0\]\.snapshots\[0\]\.events\[0\]\.revenue: must be integer cents/],
  ['a missing uuid', () => batch([event(1, { uuid: undefined })]), /^visitors\[0\]\.snapshots\[0\]\.events\[0\]\.uuid: must be a UUID/],
  [
    'a decision id that is not digits',
    () => {
      const b = batch([event(1)]);
      ((b['visitors'] as Array<{ snapshots: Array<Record<string, unknown>> }>)[0]!.snapshots[0]!)['decisions'] = [
        { campaign_id: '1', experiment_id: 'exp-2', variation_id: '3' },
      ];
      return b;
    },
    /^visitors\[0\]\.snapshots\[0\]\.decisions\[0\]\.experiment_id: must be a non-empty string of digits/,
  ],
  [
    'a numeric decision id',
    () => {
      const b = batch([event(1)]);
      ((b['visitors'] as Array<{ snapshots: Array<Record<string, unknown>> }>)[0]!.snapshots[0]!)['decisions'] = [
        { campaign_id: '1', experiment_id: '2', variation_id: 3 },
      ];
      return b;
    },
    /^visitors\[0\]\.snapshots\[0\]\.decisions\[0\]\.variation_id: must be a non-empty string of digits, got 3 \(a number/,
  ],
  [
    'a custom attribute without key',
    () => {
      const b = batch([event(1)]);
      (b['visitors'] as Array<Record<string, unknown>>)[0]!['attributes'] = [{ type: 'custom', entity_id: '111', value: 'pro' }];
      return b;
    },
    /^visitors\[0\]\.attributes\[0\]\.key: must be a non-empty string for a custom attribute/,
  ],
  ['enrich_decisions missing', () => batch([event(1)], { enrich_decisions: undefined }), /^enrich_decisions: must be true/],
  ['account_id as a number', () => batch([event(1)], { account_id: 12345 }), /^account_id: must be a non-empty string of digits/],
  ['no visitors', () => batch([]), /^visitors: must be a non-empty array/],
  ['an entity_id that is not digits', () => batch([event(1, { entity_id: 'purchase' })]), /^visitors\[0\]\.snapshots\[0\]\.events\[0\]\.entity_id: must be a non-empty string of digits/],
  ['a property that is not a string', () => batch([event(1, { properties: { sku: 12 } })]), /^visitors\[0\]\.snapshots\[0\]\.events\[0\]\.properties\.sku: must be a string/],
];

for (const [name, build, reason] of eventBreaks) {
  test(`events: ${name} is 400 naming the path when strict, 204-but-dropped when not`, async (t) => {
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      const strict = await post(receiver, build(), { strict: true });
      t.is(strict.status, 400);
      t.is(strict.headers['content-type'], 'application/json');
      t.regex(strict.json().error, reason);
      t.regex(strict.json().reasons[0] ?? '', reason);

      const silent = await post(receiver, build(), { strict: false });
      t.is(silent.status, 204);

      t.deepEqual(receiver.accepted(), [], 'nothing from an invalid batch is accepted');
      t.like(receiver.stats(), { requests: 2, invalidRequests: 2, acceptedRequests: 0, conversions: 0 });
      t.regex(receiver.invalid()[1]?.reason ?? '', reason);
    });
  });
}

test('events: one bad event refuses the whole batch, and reasons are capped at 20', async (t) => {
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const events = Array.from({ length: 30 }, (_, i) => event(i, { revenue: 0.5 }));
    const res = await post(receiver, batch(events));
    t.is(res.status, 400);
    t.is(res.json().reasons.length, 20);
    t.is(receiver.stats().conversions, 0);
  });
});

test('events: lenient answers 204 even to a strict client, and still accepts nothing', async (t) => {
  await withReceiver({ protocol: 'events', lenient: true }, async (receiver) => {
    const res = await post(receiver, batch([event(1, { revenue: 5.5 })]), { strict: true });
    t.is(res.status, 204);
    t.deepEqual(receiver.accepted(), []);
    t.is(receiver.stats().invalidRequests, 1);
  });
});

test('events: wrong content-type and malformed JSON are refused with a reason', async (t) => {
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const wrongType = await post(receiver, batch([event(1)]), { contentType: 'text/plain' });
    t.is(wrongType.status, 400);
    t.regex(wrongType.json().error, /^content-type: must be application\/json, got "text\/plain"/);
    const withCharset = await post(receiver, batch([event(1)]), { contentType: 'application/json; charset=utf-8' });
    t.is(withCharset.status, 204);
    const broken = await post(receiver, '{"account_id": "1",');
    t.is(broken.status, 400);
    t.regex(broken.json().error, /^body: not valid JSON/);
  });
});

test('events: a body over 3.5 MB is 413; exactly 3.5 MB is accepted', async (t) => {
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const base = JSON.stringify(batch([event(1, { tags: { pad: '' } })]));
    const pad = 'x'.repeat(MAX_EVENT_BATCH_BYTES - Buffer.byteLength(base));
    const exact = JSON.stringify(batch([event(1, { tags: { pad } })]));
    t.is(Buffer.byteLength(exact), MAX_EVENT_BATCH_BYTES);
    t.is((await post(receiver, exact)).status, 204);

    const over = JSON.stringify(batch([event(2, { tags: { pad: pad + 'x' } })]));
    const res = await post(receiver, over, { strict: false });
    t.is(res.status, 413, 'too large is refused even without the strict header');
    t.regex(res.json().error, /3500001 bytes is more than the 3500000-byte limit/);
    t.like(receiver.stats(), { acceptedRequests: 1, invalidRequests: 1, unique: 1 });
  });
});

test('events: maxBodyBytes lowers the limit', async (t) => {
  await withReceiver({ protocol: 'events', maxBodyBytes: 100 }, async (receiver) => {
    const res = await post(receiver, batch([event(1)]));
    t.is(res.status, 413);
  });
});

test('events: duplicates are counted by (entity_id, uuid, timestamp)', async (t) => {
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    t.is((await post(receiver, batch([event(1)]))).status, 204);
    t.is((await post(receiver, batch([event(1)]))).status, 204, 'a duplicate is still answered 204');
    t.like(receiver.stats(), { conversions: 2, unique: 1, duplicates: 1 });

    // Same uuid but another timestamp is another conversion to Optimizely.
    t.is((await post(receiver, batch([event(1, { timestamp: T0 + 999_999 })]))).status, 204);
    // So is the same uuid and timestamp under another event id.
    t.is((await post(receiver, batch([event(1, { entity_id: '777' })]))).status, 204);
    t.like(receiver.stats(), { conversions: 4, unique: 3, duplicates: 1 });
    t.deepEqual(receiver.accepted().map((c) => c.duplicate), [false, true, false, false]);

    // A copy inside the same batch is a duplicate too.
    t.is((await post(receiver, batch([event(50), event(50)]))).status, 204);
    t.like(receiver.stats(), { unique: 4, duplicates: 2 });

    // UUIDs are compared case-insensitively (RFC 9562); an entity id longer than the packed key
    // still de-duplicates.
    t.is((await post(receiver, batch([event(0xabc), event(0xabc, { uuid: uuidFor(0xabc).toUpperCase() })]))).status, 204);
    const longId = '9'.repeat(400);
    t.is((await post(receiver, batch([event(7, { entity_id: longId }), event(7, { entity_id: longId }), event(7, { entity_id: longId + '1' })]))).status, 204);
    t.like(receiver.stats(), { unique: 7, duplicates: 4 });
  });
});

test('events: reset keeps the duplicate memory unless asked to forget it', async (t) => {
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    await post(receiver, batch([event(1)]));
    receiver.reset();
    t.like(receiver.stats(), { requests: 0, conversions: 0, unique: 0 });
    t.deepEqual(receiver.accepted(), []);
    await post(receiver, batch([event(1)]));
    t.like(receiver.stats(), { requests: 1, unique: 0, duplicates: 1 });
    receiver.reset({ forgetDuplicates: true });
    await post(receiver, batch([event(1)]));
    t.like(receiver.stats(), { unique: 1, duplicates: 0 });
  });
});

test('events: keep false accepts and counts without holding conversions', async (t) => {
  await withReceiver({ protocol: 'events', keep: false }, async (receiver) => {
    t.is((await post(receiver, batch([event(1), event(2)]))).status, 204);
    t.deepEqual(receiver.accepted(), []);
    t.like(receiver.stats(), { unique: 2, conversions: 2 });
  });
});

test('events: the refuse hook turns one conversion into a 400 for its batch, and nothing of it is remembered', async (t) => {
  let refusing = true;
  const refuse = (c: { uuid?: string }) => (refusing && c.uuid === uuidFor(2) ? 'visitor opted out' : undefined);
  await withReceiver({ protocol: 'events', refuse }, async (receiver) => {
    const res = await post(receiver, batch([event(1), event(2)]));
    t.is(res.status, 400);
    t.is(res.json().error, 'visitors[1].snapshots[0].events[0]: refused: visitor opted out');
    t.like(receiver.stats(), { invalidRequests: 1, conversions: 0, unique: 0 });
    refusing = false;
    t.is((await post(receiver, batch([event(1), event(2)]))).status, 204);
    // Had the refused batch been half-remembered, these would count as duplicates.
    t.like(receiver.stats(), { unique: 2, duplicates: 0 });
  });
});

test('events: other paths are 404 with a hint; GET on the events path is 405', async (t) => {
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const classic = await request(`${receiver.origin}/event?${SEED_QUERY}`);
    t.is(classic.statusCode, 404);
    t.regex(((await classic.body.json()) as { error: string }).error, /speaks the Event API/);
    const wrongMethod = await request(receiver.url);
    t.is(wrongMethod.statusCode, 405);
    t.is(wrongMethod.headers['allow'], 'POST');
    await wrongMethod.body.text();
    t.like(receiver.stats(), { requests: 2, invalidRequests: 2 });
  });
});

// ---------------------------------------------------------------------------------------------
// Faults

test('faults: scripted 429s carry Retry-After in seconds or as an HTTP date, then normal service resumes', async (t) => {
  const date = 'Thu, 01 Jan 2026 00:00:05 GMT';
  const faults = { script: [{ status: 429 as const, retryAfter: '7' }, { status: 429 as const, retryAfter: date }, { status: 503 as const }] };
  await withReceiver({ protocol: 'events', faults }, async (receiver) => {
    const first = await post(receiver, batch([event(1)]));
    t.is(first.status, 429);
    t.is(first.headers['retry-after'], '7');
    const second = await post(receiver, batch([event(1)]));
    t.is(second.status, 429);
    t.is(second.headers['retry-after'], date);
    t.is((await post(receiver, batch([event(1)]))).status, 503);
    t.deepEqual(receiver.accepted(), [], 'a faulted request is not accepted');
    t.is((await post(receiver, batch([event(1)]))).status, 204);
    t.like(receiver.stats(), { requests: 4, acceptedRequests: 1, unique: 1, duplicates: 0, faults: { status429: 2, scripted: 3, status500: 0 } });
  });
});

test('faults: random 429s use retryAfterSeconds', async (t) => {
  await withReceiver({ protocol: 'classic', faults: { throttleRate: 1, retryAfterSeconds: 3 } }, async (receiver) => {
    const res = await get(receiver, SEED_QUERY);
    t.is(res.status, 429);
    t.is(res.headers['retry-after'], '3');
  });
});

test('faults: failRate 1 answers 500 and accepts nothing; setFaults restores service', async (t) => {
  await withReceiver({ protocol: 'classic', faults: { failRate: 1 } }, async (receiver) => {
    t.is((await get(receiver, SEED_QUERY)).status, 500);
    t.is((await get(receiver, SEED_QUERY)).status, 500);
    t.like(receiver.stats(), { acceptedRequests: 0, conversions: 0, faults: { status500: 2 } });
    receiver.setFaults({});
    t.is((await get(receiver, SEED_QUERY)).status, 200);
    t.like(receiver.stats(), { unique: 1, duplicates: 0 });
  });
});

test('faults: dropRate 1 destroys the socket, so the client sees a socket error', async (t) => {
  await withReceiver({ protocol: 'events', faults: { dropRate: 1 } }, async (receiver) => {
    const error = await t.throwsAsync(post(receiver, batch([event(1)])));
    t.is((error as Error & { code?: string }).code, 'UND_ERR_SOCKET');
    t.like(receiver.stats(), { requests: 1, acceptedRequests: 0, faults: { dropped: 1 } });
  });
});

test('faults: a stall outlasts the client headersTimeout, and close does not wait for it', async (t) => {
  // undici runs headersTimeout on its coarse "fast timers" (about 1 s resolution), so a 100 ms
  // timeout fires somewhere under ~2 s: the stall must be longer than that, not than 100 ms.
  const receiver = await startReceiver({ protocol: 'events', faults: { stallRate: 1, stallMs: 5000 } });
  try {
    const error = await t.throwsAsync(post(receiver, batch([event(1)]), { headersTimeout: 100 }));
    t.is((error as Error & { code?: string }).code, 'UND_ERR_HEADERS_TIMEOUT');
    t.like(receiver.stats(), { faults: { stalled: 1 } });
  } finally {
    const started = performance.now();
    await receiver.close();
    t.true(performance.now() - started < 200, 'close resolved before the stall ended');
  }
  t.is(receiver.stats().acceptedRequests, 0, 'a stall cut short by close is never processed');
});

test('faults: a stall shorter than the client timeout is answered normally, late', async (t) => {
  await withReceiver({ protocol: 'events', faults: { script: [{ status: 'stall' }], stallMs: 150 } }, async (receiver) => {
    const started = performance.now();
    const res = await post(receiver, batch([event(1)]));
    t.is(res.status, 204);
    t.true(performance.now() - started >= 140);
    t.like(receiver.stats(), { unique: 1, faults: { stalled: 1, scripted: 1 } });
  });
});

test('faults: delayMs adds latency to every answer', async (t) => {
  await withReceiver({ protocol: 'classic', faults: { delayMs: 80 } }, async (receiver) => {
    const started = performance.now();
    t.is((await get(receiver, SEED_QUERY)).status, 200);
    t.true(performance.now() - started >= 75);
  });
});

test('faults: the same seed replays the same faults; another seed does not', async (t) => {
  const faults = { failRate: 0.3, throttleRate: 0.2, seed: 42 };
  const run = async (seed: number): Promise<number[]> => {
    const statuses: number[] = [];
    await withReceiver({ protocol: 'classic', faults: { ...faults, seed } }, async (receiver) => {
      for (let i = 0; i < 40; i++) statuses.push((await get(receiver, `${SEED_QUERY}&time=${1_767_225_600 + i}`)).status);
    });
    return statuses;
  };
  const first = await run(42);
  const again = await run(42);
  const other = await run(7);
  t.deepEqual(again, first);
  t.notDeepEqual(other, first);
  t.true(first.includes(500) && first.includes(429) && first.includes(200), `expected a mix, got ${first.join(',')}`);
});

test('faults: each rate is the share of requests it names', (t) => {
  const plan = new FaultPlan({ dropRate: 0.1, stallRate: 0.05, throttleRate: 0.2, failRate: 0.3, seed: 3 });
  const counts = { none: 0, drop: 0, stall: 0, 429: 0, 500: 0 };
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const d = plan.next();
    if (d.kind === 'status') counts[d.status as 429 | 500]++;
    else counts[d.kind]++;
  }
  const near = (count: number, share: number) => Math.abs(count / n - share) < 0.015;
  t.true(near(counts.drop, 0.1), `drop ${counts.drop}`);
  t.true(near(counts.stall, 0.05), `stall ${counts.stall}`);
  t.true(near(counts[429], 0.2), `429 ${counts[429]}`);
  t.true(near(counts[500], 0.3), `500 ${counts[500]}`);
  t.true(near(counts.none, 0.35), `none ${counts.none}`);
});

test('faults: rates that add up to more than 1 are refused up front', async (t) => {
  const error = await t.throwsAsync(startReceiver({ protocol: 'events', faults: { failRate: 0.6, dropRate: 0.6 } }));
  t.true(isConveyError(error, 'USAGE'));
  t.regex(error?.message ?? '', /add up to 1\.2/);
});

// ---------------------------------------------------------------------------------------------
// Rate window

test('rate window: the largest count in any sliding second', (t) => {
  const w = new RateWindow(1000);
  // Ten requests 100 ms apart fit in one second...
  for (let i = 0; i < 10; i++) w.add(i * 100);
  t.is(w.max, 10);
  // ...and one at exactly 1000 ms pushes the one at 0 out (windows are half-open).
  w.add(1000);
  t.is(w.max, 10);
  w.add(1000.5);
  t.is(w.max, 11, '100..1000.5 holds 11 arrivals');
  // A slow trickle later does not raise it; a denser burst does.
  for (let i = 0; i < 5; i++) w.add(5000 + i * 400);
  t.is(w.max, 11);
  for (let i = 0; i < 15; i++) w.add(10_000 + i);
  t.is(w.max, 15);
});

test('rate window: weights count conversions, and memory stays bounded by the window', (t) => {
  const conversions = new RateWindow(1000);
  conversions.add(0, 500);
  conversions.add(600, 500);
  conversions.add(1200, 200);
  t.is(conversions.max, 1000);

  // 100,000 arrivals 1 ms apart: the window never holds more than 1000 of them.
  const w = new RateWindow(1000, 16);
  for (let i = 0; i < 100_000; i++) w.add(i);
  t.is(w.max, 1000);
  t.is(w.held, 1000);
  // A dense burst forces growth past the initial capacity.
  for (let i = 0; i < 5000; i++) w.add(200_000 + i / 10);
  t.is(w.max, 5000);
});

// ---------------------------------------------------------------------------------------------
// CLI

function fakeIO(cwd: string, signal: AbortSignal): { io: CliIO; lines: string[] } {
  const lines: string[] = [];
  let partial = '';
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      callback();
    },
  });
  const stderr = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  return { io: { stdout, stderr, isTTY: false, env: {}, cwd, logger: silentLogger, signal, setExitCode: () => undefined }, lines };
}

async function waitFor<T>(probe: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('cli: `convey receiver` prints where it listens, answers, and prints stats when stopped', async (t) => {
  const dir = await tempDir();
  const stop = new AbortController();
  const { io, lines } = fakeIO(dir, stop.signal);
  const running = receiverCommand(io).parseAsync(['--port', '0', '--protocol', 'classic', '--record', 'out.ndjson'], { from: 'user' });
  const listening = await waitFor(() => lines.find((l) => l.startsWith('receiver listening on ')), 'the listening line');
  const match = /^receiver listening on (http:\/\/127\.0\.0\.1:(\d+)) \(protocol classic\)$/.exec(listening);
  t.truthy(match, listening);
  const origin = match![1]!;

  const ok = await request(`${origin}/event?${SEED_QUERY}`);
  t.is(ok.statusCode, 200);
  await ok.body.text();
  const bad = await request(`${origin}/event?${SEED_QUERY}&v=1`);
  t.is(bad.statusCode, 400, 'the CLI receiver is strict by default');
  await bad.body.text();

  stop.abort();
  await running;
  const stats = JSON.parse(lines.at(-1)!) as { requests: number; unique: number; invalidRequests: number };
  t.like(stats, { requests: 2, unique: 1, invalidRequests: 1 });
  const recorded = (await readFile(join(dir, 'out.ndjson'), 'utf8')).trim().split('\n');
  t.is(recorded.length, 1, 'the record file is relative to the working directory');
  await rm(dir, { recursive: true, force: true });
});

test('cli: fault flags reach the receiver', async (t) => {
  const stop = new AbortController();
  const { io, lines } = fakeIO(tmpdir(), stop.signal);
  const running = receiverCommand(io).parseAsync(['--protocol', 'events', '--throttle-rate', '1', '--retry-after', '9'], { from: 'user' });
  const listening = await waitFor(() => lines.find((l) => l.startsWith('receiver listening on ')), 'the listening line');
  t.regex(listening, /\(protocol events\)$/);
  const origin = listening.split(' ')[3]!;
  const res = await request(`${origin}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch([event(1)])) });
  t.is(res.statusCode, 429);
  t.is(res.headers['retry-after'], '9');
  await res.body.text();
  stop.abort();
  await running;
  t.like(JSON.parse(lines.at(-1)!), { faults: { status429: 1 } });
});

test('cli: a share outside 0..1 is a usage error', async (t) => {
  const { io } = fakeIO(tmpdir(), new AbortController().signal);
  const error = await t.throwsAsync(receiverCommand(io).parseAsync(['--fail-rate', '1.5'], { from: 'user' }));
  t.true(isConveyError(error, 'USAGE'));
  t.regex(error?.message ?? '', /--fail-rate must be a share between 0 and 1, got "1\.5"/);
});
