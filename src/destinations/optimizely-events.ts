import type { Rejection } from '../check/conversion.ts';
import type { EventsDestinationConfig } from '../config/project.ts';
import { conveyVersion } from '../package-root.ts';
import { toEpochMillis } from '../time/instant.ts';
import type { Destination, Encoded, PlannedRequest } from './destination.ts';
import { conversionUuid } from './idempotency.ts';

/** Columns the Event API has no field for: sending them would drop data silently. */
const UNSUPPORTED = ['segments'];

/**
 * Optimizely's Event API: `POST /v1/events`, a JSON EventBatch carrying many visitors. Each
 * conversion is one event with a uuid derived from its idempotency key and its real time, so
 * resends are de-duplicated by Optimizely. Conversions of one visitor (with the same attributes)
 * share one `visitors[]` entry.
 */
export function optimizelyEvents(config: EventsDestinationConfig, ledgerKey = `optimizely-events:${config.accountId}`): Destination {
  // The uuid names the conversion at Optimizely, so it is derived from the account, never from the
  // ledger key: the file destination keeps a ledger of its own, yet what it writes must carry the
  // uuid a real send carries, or a copy piped on from the file and a later run both count.
  const uuidKey = `optimizely-events:${config.accountId}`;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (config.strict) headers['x-optimizely-strict'] = 'true';
  const envelope = JSON.stringify({
    account_id: config.accountId,
    ...(config.projectId ? { project_id: config.projectId } : {}),
    anonymize_ip: config.anonymizeIp,
    client_name: 'convey',
    client_version: conveyVersion,
    enrich_decisions: true,
  });
  // `{...,"visitors":[` + visitors joined by commas + `]}`
  const prefix = `${envelope.slice(0, -1)},"visitors":[`;
  const suffix = ']}';
  const fixedBytes = Buffer.byteLength(prefix) + suffix.length;

  return {
    type: 'optimizely-events',
    key: ledgerKey,
    label: `Optimizely Event API, account ${config.accountId}, ${config.endpoint}`,
    splittable: true,

    checkColumns(columns) {
      const problems: string[] = [];
      if (!columns.has('event_id')) {
        problems.push('the Event API needs event_id (the event\'s entity id in Optimizely); add it to the SELECT');
      }
      for (const column of UNSUPPORTED) {
        if (columns.has(column)) problems.push(`the Event API has no field for ${column} (a classic-only column); remove it or use optimizely-classic`);
      }
      return problems;
    },

    refuse(c): Rejection | undefined {
      if (c.eventId === undefined) return { code: 'missing_event_id', reason: 'event_id is empty: the Event API needs the event\'s entity id' };
      if (c.campaignId !== undefined) {
        if (c.experiments.length === 0) {
          return { code: 'bad_campaign_id', reason: 'campaign_id is set but no experiment and variation: a decision needs all three' };
        }
        const multivariate = c.experiments.find((e) => e.variationIds.length > 1);
        if (multivariate) {
          return {
            code: 'multivariate_decision',
            reason: `experiment ${multivariate.experimentId} has several variations (${multivariate.variationIds.join('_')}); an Event API decision takes one`,
          };
        }
      }
      return undefined;
    },

    event: (c) => c.eventId ?? '',

    encode(c): Encoded {
      // Written by hand, not JSON.stringify of an object: this runs once per conversion and was
      // the largest single cost of a 1M-conversion run (1.7 s of CPU). Ids are digits (checked),
      // so they need no escaping; anything else goes through JSON.stringify. The pieces are
      // joined once: built with += and template literals the payload was a tree of V8 cons
      // strings, flattened again by each later use (2.5 µs per conversion, where one join of
      // the pieces takes 1).
      const eventId = c.eventId ?? '';
      const parts: string[] = ['{"visitor_id":', JSON.stringify(c.visitorId), ','];
      if (c.attributes.length) {
        parts.push('"attributes":', JSON.stringify(c.attributes.map((a) => ({ type: a.type, entity_id: a.entityId, key: a.key, value: a.value }))), ',');
      }
      // Snapshots last, so `requests` can cut a stored payload without parsing it (snapshotOf).
      parts.push(SNAPSHOTS, '{');
      if (c.campaignId !== undefined) {
        const decisions = c.experiments.map(
          (e) => `{"campaign_id":"${c.campaignId}","experiment_id":"${e.experimentId}","variation_id":"${e.variationIds[0]}","is_campaign_holdback":false}`,
        );
        parts.push('"decisions":[', decisions.join(','), '],');
      }
      parts.push('"events":[', eventStart(eventId, c.eventKey), String(toEpochMillis(c.occurredAt)), ',"uuid":"', conversionUuid(uuidKey, eventId, c.conversionId), '"');
      if (c.revenueCents !== undefined) parts.push(',"revenue":', String(c.revenueCents));
      if (c.value !== undefined) parts.push(',"value":', JSON.stringify(c.value));
      if (c.quantity !== undefined) parts.push(',"quantity":', String(c.quantity));
      if (c.tags !== undefined) parts.push(',"tags":', JSON.stringify(c.tags));
      parts.push('}]}]}');
      return { event: eventId, conversionId: c.conversionId, payload: parts.join('') };
    },

    requests(items) {
      const planned: PlannedRequest[] = [];
      // By visitor entry (the payload's head): a visitor seen once is its payload as it stands,
      // and only a visitor seen again gets a group. Per conversion that saves an object, two
      // arrays and a string rebuilt from the same pieces: 500 of the 5,100 bytes allocated per
      // conversion on the 300,000-conversion benchmark, where every visitor is seen once a batch.
      let visitors = new Map<string, Encoded | Group>();
      let bytes = fixedBytes;
      const flush = (): void => {
        if (visitors.size === 0) return;
        const entries: string[] = [];
        const carried: Encoded[] = [];
        for (const v of visitors.values()) {
          if (v instanceof Group) {
            entries.push(`${v.head}${v.snapshots.join(',')}]}`);
            for (const item of v.items) carried.push(item);
          } else {
            entries.push(v.payload);
            carried.push(v);
          }
        }
        planned.push({
          request: { method: 'POST', url: config.endpoint, headers, body: `${prefix}${entries.join(',')}${suffix}` },
          items: carried,
        });
        visitors = new Map();
        bytes = fixedBytes;
      };
      for (const item of items) {
        const payload = item.payload;
        const at = payload.indexOf(SNAPSHOTS) + SNAPSHOTS.length;
        const head = payload.slice(0, at);
        const existing = visitors.get(head);
        // Measured in UTF-8 bytes, the unit of the 3.5 MB limit. A new visitor entry costs the whole
        // payload and a comma; joining an existing one, its snapshot and a comma.
        const cost = existing ? Buffer.byteLength(payload) - Buffer.byteLength(head) - 1 : Buffer.byteLength(payload) + 1;
        if (bytes + cost > config.maxBatchBytes && visitors.size > 0) {
          flush();
          visitors.set(head, item);
          bytes += Buffer.byteLength(payload) + 1;
          continue;
        }
        bytes += cost;
        if (!existing) visitors.set(head, item);
        else if (existing instanceof Group) existing.add(item, at);
        else visitors.set(head, new Group(head, existing, at).add(item, at));
      }
      flush();
      return planned;
    },
  };
}

/** A visitor entry carrying several conversions: its head once, their snapshots after it. */
class Group {
  readonly snapshots: string[];
  readonly items: Encoded[];
  constructor(
    readonly head: string,
    first: Encoded,
    at: number,
  ) {
    this.snapshots = [snapshotOf(first.payload, at)];
    this.items = [first];
  }

  add(item: Encoded, at: number): this {
    this.snapshots.push(snapshotOf(item.payload, at));
    this.items.push(item);
    return this;
  }
}

const SNAPSHOTS = '"snapshots":[';

/** `{"entity_id":"…","key":…,"timestamp":` for each event id and key (a job sends a handful), by id, then key. */
const eventStarts = new Map<string, Map<string | undefined, string>>();

function eventStart(eventId: string, eventKey: string | undefined): string {
  let byKey = eventStarts.get(eventId);
  let start = byKey?.get(eventKey);
  if (start === undefined) {
    start = `{"entity_id":"${eventId}"${eventKey === undefined ? '' : `,"key":${JSON.stringify(eventKey)}`},"timestamp":`;
    // Bounded like check-row.ts's JSON cache: all-distinct keys cost a cleared map now and then.
    if (!byKey) {
      if (eventStarts.size >= 1000) eventStarts.clear();
      eventStarts.set(eventId, (byKey = new Map()));
    } else if (byKey.size >= 1000) {
      byKey.clear();
    }
    byKey.set(eventKey, start);
  }
  return start;
}

/**
 * A stored visitor payload is its head (visitor_id and attributes: what identifies its visitors[]
 * entry), `"snapshots":[`, its snapshot and `]}`. Attribute values are scalars, so the first
 * `"snapshots":[` outside a string is the one `encode` wrote; `at` is where it ends.
 */
function snapshotOf(payload: string, at: number): string {
  return payload.slice(at, -2);
}
