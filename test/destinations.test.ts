import test from 'ava';
import { validate as isUuid, v5 as uuidv5, version as uuidVersion } from 'uuid';
import { checkRow } from '../src/check/check-row.ts';
import type { Conversion } from '../src/check/conversion.ts';
import type { ClassicDestinationConfig, EventsDestinationConfig } from '../src/config/project.ts';
import { optimizelyClassic } from '../src/destinations/optimizely-classic.ts';
import { conversionUuid } from '../src/destinations/idempotency.ts';
import { createDestination } from '../src/destinations/index.ts';
import { optimizelyEvents } from '../src/destinations/optimizely-events.ts';
import { conveyVersion } from '../src/package-root.ts';
import { validateClassicQuery } from '../src/receiver/validate-classic.ts';
import { validateEventBatch } from '../src/receiver/validate-events.ts';

const SEED_URL =
  'http://1234567.log.optimizely.com/event?a=1234567&n=example_event&u=oeu1316548451038r0.12412704364396632&x987654321=1111111&x876543210=2222222_3333333&v=500&g=1234567';

/** The seed document's example as a row a job's SQL would return. */
const seedRow = {
  conversion_id: 'SEED-1',
  occurred_at: '2026-03-01 12:00:00.123456+00',
  visitor_id: 'oeu1316548451038r0.12412704364396632',
  event_key: 'example_event',
  event_id: '1234567',
  revenue_cents: 500,
  // As PostgreSQL sends a json column: text, in the order written.
  experiments: '{"987654321": "1111111", "876543210": "2222222_3333333"}',
};

function conversion(row: Record<string, unknown>): Conversion {
  const checked = checkRow(row, 'occurred_at');
  if (!checked.ok) throw new Error(checked.rejection.reason);
  return checked.conversion;
}

const classicConfig: ClassicDestinationConfig = {
  type: 'optimizely-classic',
  projectId: '1234567',
  endpoint: 'http://1234567.log.optimizely.com/event',
  src: 'convey-test',
};

const eventsConfig: EventsDestinationConfig = {
  type: 'optimizely-events',
  accountId: '5555',
  projectId: '1234567',
  endpoint: 'https://logx.optimizely.com/v1/events',
  anonymizeIp: true,
  strict: true,
  maxBatchBytes: 3_500_000,
};

test('classic: the seed example row reproduces the seed URL parameter by parameter, additions after', (t) => {
  const classic = optimizelyClassic(classicConfig);
  const c = conversion(seedRow);
  t.is(classic.refuse(c), undefined);
  const [planned] = classic.requests([classic.encode(c)]);
  const url = new URL(planned!.request.url);
  const seed = new URL(SEED_URL);
  t.is(planned!.request.method, 'GET');
  t.is(url.origin + url.pathname, seed.origin + seed.pathname);
  const sent = [...url.searchParams.entries()];
  const expected = [...seed.searchParams.entries()];
  for (const [i, [name, value]] of expected.entries()) t.deepEqual(sent[i], [name, value], `parameter ${i + 1} (${name})`);
  t.deepEqual(sent.slice(expected.length).map(([name]) => name), ['time', 'src'], 'additions come after the seed parameters');
  t.is(url.searchParams.get('time'), String(Date.parse('2026-03-01T12:00:00Z') / 1000), 'time is epoch seconds of occurred_at');
  t.true(planned!.request.url.startsWith(SEED_URL + '&'), 'byte for byte the seed URL, then the additions');
  t.deepEqual(validateClassicQuery(url.search.slice(1), url.host).problems, []);
});

test('classic: revenue goal, account, segments, encoding, and what it refuses', (t) => {
  const classic = optimizelyClassic({ ...classicConfig, accountId: '42', revenueGoalId: '999' });
  const c = conversion({ ...seedRow, visitor_id: 'user 1&2', segments: '{"983745985": "gc", "12": "a b"}' });
  const params = new URLSearchParams(classic.encode(c).payload);
  t.is(params.get('g'), '1234567,999', 'the revenue goal is appended when revenue is sent');
  t.is(params.get('d'), '42');
  t.is(params.get('u'), 'user 1&2');
  t.regex(classic.encode(c).payload, /u=user%201%262/);
  t.deepEqual([...params.keys()].slice(7), ['d', 's983745985', 's12', 'time', 'src']);

  const noRevenue = new URLSearchParams(classic.encode(conversion({ ...seedRow, revenue_cents: null })).payload);
  t.is(noRevenue.get('g'), '1234567', 'no revenue, no revenue goal');
  t.false(noRevenue.has('v'));

  const flat = conversion({ ...seedRow, experiments: null, experiment_id: 111, variation_id: '222' });
  t.is(new URLSearchParams(classic.encode(flat).payload).get('x111'), '222');
  const list = conversion({ ...seedRow, experiments: '{"5": ["6", "7"]}' });
  t.is(new URLSearchParams(classic.encode(list).payload).get('x5'), '6_7');

  t.like(classic.refuse(conversion({ ...seedRow, experiments: null })), { code: 'missing_experiments' });
  t.like(classic.refuse(conversion({ ...seedRow, event_key: null })), { code: 'missing_event_key' });
  t.deepEqual(classic.checkColumns(new Set(['conversion_id', 'occurred_at', 'visitor_id', 'event_key', 'experiments'])), []);
  t.is(classic.checkColumns(new Set(['conversion_id', 'occurred_at', 'visitor_id'])).length, 2);
  t.regex(classic.checkColumns(new Set(['event_key', 'experiments', 'tags'])).join(), /no parameter for tags/);
});

test('events: a batch matches the Event API schema field by field', (t) => {
  const events = optimizelyEvents(eventsConfig);
  const rich = conversion({
    ...seedRow,
    conversion_id: 'A-1',
    experiments: '{"987654321": "1111111"}',
    campaign_id: '4444',
    value: '12.5',
    quantity: 3,
    tags: '{"channel": "phone", "agent": 7}',
    attributes: '[{"entity_id": "3333", "key": "plan", "value": "gold"}]',
  });
  const plain = conversion({ ...seedRow, conversion_id: 'A-2', visitor_id: 'v2', experiments: null });
  const [planned, ...more] = events.requests([events.encode(rich), events.encode(plain)]);
  t.is(more.length, 0);
  const { request } = planned!;
  t.is(request.method, 'POST');
  t.is(request.url, 'https://logx.optimizely.com/v1/events');
  t.is(request.headers['content-type'], 'application/json');
  t.is(request.headers['x-optimizely-strict'], 'true');

  const body = JSON.parse(request.body!) as Record<string, any>;
  t.is(body.account_id, '5555');
  t.is(body.project_id, '1234567');
  t.is(body.anonymize_ip, true);
  t.is(body.client_name, 'convey');
  t.is(body.client_version, conveyVersion);
  t.is(body.enrich_decisions, true);
  t.is(body.visitors.length, 2);

  const [v1, v2] = body.visitors;
  t.is(v1.visitor_id, 'oeu1316548451038r0.12412704364396632');
  t.deepEqual(v1.attributes, [{ type: 'custom', entity_id: '3333', key: 'plan', value: 'gold' }]);
  t.deepEqual(v1.snapshots[0].decisions, [{ campaign_id: '4444', experiment_id: '987654321', variation_id: '1111111', is_campaign_holdback: false }]);
  const e = v1.snapshots[0].events[0];
  t.is(e.entity_id, '1234567');
  t.is(e.key, 'example_event');
  t.is(e.timestamp, Date.parse('2026-03-01T12:00:00.123Z'), 'epoch milliseconds of occurred_at, never now');
  t.is(String(e.timestamp).length, 13);
  t.true(isUuid(e.uuid) && uuidVersion(e.uuid) === 5, 'a UUID v5');
  t.is(e.revenue, 500);
  t.true(Number.isInteger(e.revenue));
  t.is(e.value, 12.5);
  t.is(e.quantity, 3);
  t.deepEqual(e.tags, { channel: 'phone', agent: 7 });
  t.false('decisions' in v2.snapshots[0], 'no campaign_id, no decision: Optimizely enriches');
  t.false('attributes' in v2);

  t.deepEqual(validateEventBatch(body).problems, [], 'the receiver (strict Optimizely rules) accepts it');
});

test('events: the uuid is derived from the idempotency key, so a resend is de-duplicated', (t) => {
  const events = optimizelyEvents(eventsConfig);
  const a = JSON.parse(events.encode(conversion(seedRow)).payload);
  const again = JSON.parse(events.encode(conversion({ ...seedRow, revenue_cents: 700 })).payload);
  const other = JSON.parse(optimizelyEvents({ ...eventsConfig, accountId: '6666' }).encode(conversion(seedRow)).payload);
  const otherId = JSON.parse(events.encode(conversion({ ...seedRow, conversion_id: 'SEED-2' })).payload);
  const uuid = (p: any): string => p.snapshots[0].events[0].uuid;
  t.is(uuid(a), uuid(again), 'same destination, event and conversion_id: same uuid');
  t.is(uuid(a), uuidv5('optimizely-events:5555\n1234567\nSEED-1', '57d31011-7aca-47ae-b64a-15695262de71'), 'exactly the uuid package\'s v5');
  t.is(conversionUuid('k', 'é', '✓ 1'), uuidv5('k\né\n✓ 1', '57d31011-7aca-47ae-b64a-15695262de71'), 'on any text');
  t.not(uuid(a), uuid(other));
  t.not(uuid(a), uuid(otherId));
});

test('events: the file destination writes the uuid the Event API would be sent, whatever its path', (t) => {
  // Its ledger key is its own (writing to a file is not sending), but the uuid is what lets
  // Optimizely drop a second copy: requests piped on from the file and a later real run of the
  // same conversion must carry the same one.
  const c = conversion(seedRow);
  const uuid = (payload: string): string => JSON.parse(payload).snapshots[0].events[0].uuid;
  const sent = uuid(optimizelyEvents(eventsConfig).encode(c).payload);
  const filed = createDestination({ type: 'file', path: '/tmp/a/requests.ndjson', protocol: eventsConfig }).destination;
  const elsewhere = createDestination({ type: 'file', path: '/srv/b/requests.ndjson', protocol: eventsConfig }).destination;
  t.not(filed.key, optimizelyEvents(eventsConfig).key, 'a ledger of its own');
  t.is(uuid(filed.encode(c).payload), sent);
  t.is(uuid(elsewhere.encode(c).payload), sent);
});

test('events: one visitors[] entry per visitor, and no body over the byte limit', (t) => {
  const events = optimizelyEvents({ ...eventsConfig, maxBatchBytes: 4000 });
  const items = Array.from({ length: 60 }, (_, i) =>
    events.encode(conversion({ ...seedRow, conversion_id: `C-${i}`, visitor_id: `visitor-${i % 20}`, tags: JSON.stringify({ note: 'é'.repeat(40) }) })),
  );
  const planned = events.requests(items);
  t.true(planned.length > 1, 'split by size');
  const seen: string[] = [];
  for (const p of planned) {
    t.true(Buffer.byteLength(p.request.body!) <= 4000, `body of ${Buffer.byteLength(p.request.body!)} bytes (UTF-8, not characters)`);
    const body = JSON.parse(p.request.body!);
    const ids = body.visitors.map((v: { visitor_id: string }) => v.visitor_id);
    t.is(new Set(ids).size, ids.length, 'a visitor appears once per request');
    t.deepEqual(validateEventBatch(body).problems, []);
    seen.push(...p.items.map((item) => item.conversionId));
  }
  t.deepEqual(seen.sort(), items.map((i) => i.conversionId).sort(), 'every conversion exactly once');

  const together = optimizelyEvents(eventsConfig).requests(items);
  t.is(together.length, 1);
  t.is(JSON.parse(together[0]!.request.body!).visitors.length, 20, '60 conversions of 20 visitors: 20 entries');
});

test('events: what it refuses, and the columns it needs', (t) => {
  const events = optimizelyEvents(eventsConfig);
  t.like(events.refuse(conversion({ ...seedRow, event_id: null })), { code: 'missing_event_id' });
  t.like(events.refuse(conversion({ ...seedRow, campaign_id: '1' })), { code: 'multivariate_decision' });
  t.like(events.refuse(conversion({ ...seedRow, experiments: null, campaign_id: '1' })), { code: 'bad_campaign_id' });
  t.regex(events.checkColumns(new Set(['conversion_id'])).join(), /needs event_id/);
  t.regex(events.checkColumns(new Set(['event_id', 'segments'])).join(), /no field for segments/);
});
