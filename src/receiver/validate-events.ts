import { MAX_PROBLEMS_COLLECTED } from './limits.ts';

/**
 * Validation of an Event API batch (`POST /v1/events`) the way a strict Optimizely would do it,
 * following the OpenAPI spec v1.3.0 as summarised in PROTOCOL.md §2. Unknown fields are allowed:
 * the official SDKs send some (`revision`) that the spec does not list.
 */

/** One event of a valid batch, as the spec defines it. */
export interface EventApiEvent {
  timestamp: number;
  uuid: string;
  entity_id: string;
  key?: string;
  type?: string;
  revenue?: number;
  value?: number;
  quantity?: number;
  tags?: Record<string, unknown>;
  properties?: Record<string, string>;
  [field: string]: unknown;
}

export interface EventApiSnapshot {
  decisions?: Array<{ campaign_id: string; experiment_id: string; variation_id: string; is_campaign_holdback?: boolean }>;
  events: EventApiEvent[];
  [field: string]: unknown;
}

export interface EventApiVisitor {
  visitor_id: string;
  session_id?: string;
  attributes?: Array<{ type: string; entity_id?: string; key?: string; value: string | number | boolean }>;
  snapshots: EventApiSnapshot[];
  [field: string]: unknown;
}

export interface EventApiBatch {
  account_id: string;
  project_id?: string;
  anonymize_ip?: boolean;
  client_name?: string;
  client_version?: string;
  enrich_decisions: true;
  visitors: EventApiVisitor[];
  [field: string]: unknown;
}

/** An event together with the visitor and snapshot that carry it. */
export interface CarriedEvent {
  visitor: EventApiVisitor;
  snapshot: EventApiSnapshot;
  event: EventApiEvent;
  /** JSON path of the event in the batch, e.g. `visitors[3].snapshots[0].events[0]`. */
  path: string;
}

export interface EventBatchCheck {
  /** Problems, each `<json path>: <rule>, got <value>`, in document order; empty when valid. */
  problems: string[];
  /** Every event the batch carries, in document order; complete only when `problems` is empty. */
  events: CarriedEvent[];
}

const DIGITS = /^[0-9]+$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const MIN_MS = 1_000_000_000_000; // smallest 13-digit number (2001-09-09)
const MAX_MS = 9_999_999_999_999;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Renders a value for a reason: short, and unambiguous about its JSON type. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing (missing)';
  if (typeof value === 'string') {
    const text = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(text);
  }
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/**
 * Check a parsed JSON body. Pure: no I/O, no clock. Stops collecting after MAX_PROBLEMS_COLLECTED
 * problems, since a batch with that many is refused anyway.
 */
export function validateEventBatch(body: unknown): EventBatchCheck {
  const problems: string[] = [];
  const events: CarriedEvent[] = [];
  const full = (): boolean => problems.length >= MAX_PROBLEMS_COLLECTED;

  if (!isObject(body)) {
    problems.push(`body: must be a JSON object (an EventBatch), got ${show(body)}`);
    return { problems, events };
  }

  digitString(body, 'account_id', '', true, problems);
  digitString(body, 'project_id', '', false, problems);
  optionalType(body, 'anonymize_ip', '', 'boolean', problems);
  optionalType(body, 'client_name', '', 'string', problems);
  optionalType(body, 'client_version', '', 'string', problems);
  if (body['enrich_decisions'] !== true) {
    problems.push(
      `enrich_decisions: must be true (Optimizely attributes the conversion to the visitor's earlier decisions), got ${show(body['enrich_decisions'])}`,
    );
  }

  const visitors = body['visitors'];
  if (!Array.isArray(visitors) || visitors.length === 0) {
    problems.push(`visitors: must be a non-empty array, got ${show(visitors)}`);
    return { problems, events };
  }

  for (let vi = 0; vi < visitors.length && !full(); vi++) {
    const visitor: unknown = visitors[vi];
    const vp = `visitors[${vi}]`;
    if (!isObject(visitor)) {
      problems.push(`${vp}: must be an object, got ${show(visitor)}`);
      continue;
    }
    const visitorId = visitor['visitor_id'];
    if (typeof visitorId !== 'string' || visitorId.length === 0) {
      problems.push(`${vp}.visitor_id: must be a non-empty string, got ${show(visitorId)}`);
    }
    optionalType(visitor, 'session_id', vp, 'string', problems);
    checkAttributes(visitor['attributes'], vp, problems);

    const snapshots = visitor['snapshots'];
    if (!Array.isArray(snapshots) || snapshots.length === 0) {
      problems.push(`${vp}.snapshots: must be a non-empty array, got ${show(snapshots)}`);
      continue;
    }
    for (let si = 0; si < snapshots.length && !full(); si++) {
      const snapshot: unknown = snapshots[si];
      const sp = `${vp}.snapshots[${si}]`;
      if (!isObject(snapshot)) {
        problems.push(`${sp}: must be an object, got ${show(snapshot)}`);
        continue;
      }
      checkDecisions(snapshot['decisions'], sp, problems);
      const list = snapshot['events'];
      if (!Array.isArray(list) || list.length === 0) {
        problems.push(`${sp}.events: must be a non-empty array, got ${show(list)}`);
        continue;
      }
      for (let ei = 0; ei < list.length && !full(); ei++) {
        const event: unknown = list[ei];
        const ep = `${sp}.events[${ei}]`;
        if (checkEvent(event, ep, problems)) {
          events.push({
            visitor: visitor as EventApiVisitor,
            snapshot: snapshot as EventApiSnapshot,
            event: event as EventApiEvent,
            path: ep,
          });
        }
      }
    }
  }
  if (problems.length > MAX_PROBLEMS_COLLECTED) problems.length = MAX_PROBLEMS_COLLECTED;
  return { problems, events };
}

/** Returns true when the event is valid. */
function checkEvent(event: unknown, at: string, problems: string[]): boolean {
  if (!isObject(event)) {
    problems.push(`${at}: must be an object, got ${show(event)}`);
    return false;
  }
  const before = problems.length;

  const ts = event['timestamp'];
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts < MIN_MS || ts > MAX_MS) {
    let hint = '';
    if (typeof ts === 'number' && Number.isInteger(ts) && ts >= 1_000_000_000 && ts <= 9_999_999_999) hint = ' (seconds?)';
    else if (typeof ts === 'number' && ts > MAX_MS) hint = ' (microseconds?)';
    else if (typeof ts === 'string') hint = ' (a string; send a JSON number)';
    problems.push(`${at}.timestamp: must be epoch milliseconds (13 digits), got ${show(ts)}${hint}`);
  }

  const uuid = event['uuid'];
  if (typeof uuid !== 'string' || !UUID.test(uuid)) {
    problems.push(`${at}.uuid: must be a UUID (8-4-4-4-12 hex digits), got ${show(uuid)}`);
  }

  const entityId = event['entity_id'];
  if (typeof entityId !== 'string' || !DIGITS.test(entityId)) {
    problems.push(`${at}.entity_id: must be a non-empty string of digits (the event's id), got ${show(entityId)}`);
  }

  optionalType(event, 'key', at, 'string', problems);
  optionalType(event, 'type', at, 'string', problems);

  const revenue = event['revenue'];
  if (revenue !== undefined && !(typeof revenue === 'number' && Number.isSafeInteger(revenue))) {
    problems.push(`${at}.revenue: must be integer cents ($5.00 is 500), got ${show(revenue)}`);
  }
  const value = event['value'];
  if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value))) {
    problems.push(`${at}.value: must be a finite number, got ${show(value)}`);
  }
  const quantity = event['quantity'];
  if (quantity !== undefined && !(typeof quantity === 'number' && Number.isSafeInteger(quantity))) {
    problems.push(`${at}.quantity: must be an integer, got ${show(quantity)}`);
  }
  const tags = event['tags'];
  if (tags !== undefined && !isObject(tags)) {
    problems.push(`${at}.tags: must be an object, got ${show(tags)}`);
  }
  const properties = event['properties'];
  if (properties !== undefined) {
    if (!isObject(properties)) {
      problems.push(`${at}.properties: must be an object of strings, got ${show(properties)}`);
    } else {
      for (const name of Object.keys(properties)) {
        const v = properties[name];
        if (typeof v !== 'string') problems.push(`${at}.properties.${name}: must be a string, got ${show(v)}`);
      }
    }
  }
  return problems.length === before;
}

function checkAttributes(attributes: unknown, at: string, problems: string[]): void {
  if (attributes === undefined) return;
  if (!Array.isArray(attributes)) {
    problems.push(`${at}.attributes: must be an array, got ${show(attributes)}`);
    return;
  }
  for (let i = 0; i < attributes.length; i++) {
    const attribute: unknown = attributes[i];
    const ap = `${at}.attributes[${i}]`;
    if (!isObject(attribute)) {
      problems.push(`${ap}: must be an object, got ${show(attribute)}`);
      continue;
    }
    const type = attribute['type'];
    if (typeof type !== 'string' || type.length === 0) {
      problems.push(`${ap}.type: must be a non-empty string (usually "custom"), got ${show(type)}`);
    }
    const custom = type === 'custom';
    for (const field of ['entity_id', 'key'] as const) {
      const v = attribute[field];
      if (v === undefined && !custom) continue;
      if (typeof v !== 'string' || (custom && v.length === 0)) {
        problems.push(`${ap}.${field}: must be a${custom ? ' non-empty' : ''} string${custom ? ' for a custom attribute' : ''}, got ${show(v)}`);
      }
    }
    const value = attribute['value'];
    if (!(typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)))) {
      problems.push(`${ap}.value: must be a string, number or boolean, got ${show(value)}`);
    }
  }
}

function checkDecisions(decisions: unknown, at: string, problems: string[]): void {
  if (decisions === undefined) return;
  if (!Array.isArray(decisions)) {
    problems.push(`${at}.decisions: must be an array, got ${show(decisions)}`);
    return;
  }
  for (let i = 0; i < decisions.length; i++) {
    const decision: unknown = decisions[i];
    const dp = `${at}.decisions[${i}]`;
    if (!isObject(decision)) {
      problems.push(`${dp}: must be an object, got ${show(decision)}`);
      continue;
    }
    for (const field of ['campaign_id', 'experiment_id', 'variation_id'] as const) {
      digitString(decision, field, dp, true, problems);
    }
    optionalType(decision, 'is_campaign_holdback', dp, 'boolean', problems);
  }
}

function digitString(owner: Json, field: string, at: string, required: boolean, problems: string[]): void {
  const value = owner[field];
  if (value === undefined && !required) return;
  if (typeof value !== 'string' || !DIGITS.test(value)) {
    const hint = typeof value === 'number' ? ' (a number; send it as a JSON string)' : '';
    problems.push(`${at ? `${at}.` : ''}${field}: must be a non-empty string of digits, got ${show(value)}${hint}`);
  }
}

function optionalType(owner: Json, field: string, at: string, type: 'string' | 'boolean', problems: string[]): void {
  const value = owner[field];
  if (value === undefined || typeof value === type) return;
  problems.push(`${at ? `${at}.` : ''}${field}: must be a ${type}, got ${show(value)}`);
}
