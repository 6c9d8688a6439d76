import { parseInstant, type Instant } from '../time/instant.ts';
import type { Attribute, Conversion, Experiment, Rejection } from './conversion.ts';
import { orderedEntries } from './json-entries.ts';

export type CheckResult =
  | { ok: true; conversion: Conversion }
  | { ok: false; rejection: Rejection; conversionId?: string; cursor?: Instant };

class RowError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const DIGITS = /^[0-9]+$/;
// Ids travel in URLs and JSON; control characters there are always an upstream bug.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_ID_LENGTH = 512;
/** With the u flag a whole pair is one code point, so this finds only halves standing alone. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Turns one source row into a Conversion, or says exactly why it cannot be sent. Never throws for
 * bad data: a malformed row is a reject with a reason, and the run goes on.
 */
export function checkRow(row: Record<string, unknown>, cursorColumn: string): CheckResult {
  const conversionId = textId(row.conversion_id);
  const cursor = parseInstant(row[cursorColumn]);
  try {
    if (conversionId === undefined) throw missingOrBad('conversion_id', row.conversion_id);
    if (row.occurred_at === null || row.occurred_at === undefined) throw new RowError('missing_occurred_at', 'occurred_at is empty: a conversion needs the time it happened');
    const occurredAt = cursorColumn === 'occurred_at' ? cursor : parseInstant(row.occurred_at);
    if (!occurredAt) throw new RowError('bad_occurred_at', `occurred_at ${JSON.stringify(row.occurred_at)} is not a timestamp`);
    if (!cursor) {
      throw new RowError('missing_cursor', `${cursorColumn} ${JSON.stringify(row[cursorColumn] ?? null)} is not a timestamp: the row cannot be placed in a window`);
    }
    const visitorId = textId(row.visitor_id);
    if (visitorId === undefined) throw missingOrBad('visitor_id', row.visitor_id);

    const conversion: Conversion = {
      conversionId,
      occurredAt,
      cursor,
      visitorId,
      experiments: experiments(row),
      segments: segments(row.segments),
      attributes: attributes(row.attributes),
    };
    const eventKey = optionalText(row.event_key, 'event_key');
    if (eventKey !== undefined) conversion.eventKey = eventKey;
    const eventId = optionalDigits(row.event_id, 'event_id');
    if (eventId !== undefined) conversion.eventId = eventId;
    const campaignId = optionalDigits(row.campaign_id, 'campaign_id');
    if (campaignId !== undefined) conversion.campaignId = campaignId;
    const revenue = integer(row.revenue_cents, 'revenue_cents', 'bad_revenue');
    if (revenue !== undefined) conversion.revenueCents = revenue;
    const value = finiteNumber(row.value, 'value');
    if (value !== undefined) conversion.value = value;
    const quantity = integer(row.quantity, 'quantity', 'bad_quantity');
    if (quantity !== undefined) conversion.quantity = quantity;
    const tags = scalarObject(row.tags, 'tags');
    if (tags !== undefined) conversion.tags = tags;
    return { ok: true, conversion };
  } catch (error) {
    if (!(error instanceof RowError)) throw error;
    return {
      ok: false,
      rejection: { code: error.code, reason: error.message },
      ...(conversionId === undefined ? {} : { conversionId }),
      ...(cursor === undefined ? {} : { cursor }),
    };
  }
}

/** A text or integer id, as text; undefined when empty or malformed. */
function textId(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'string') return undefined;
  if (value.length > MAX_ID_LENGTH || !plainId(value)) return undefined;
  return value;
}

/**
 * Not blank and free of control characters: what `value.trim() !== '' && !CONTROL.test(value)`
 * says, in one pass without a regular expression or a trimmed copy (two ids a row: 0.2 µs a row).
 */
function plainId(value: string): boolean {
  let blank = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
    if (blank && (c > 0x20 && c < 0x7f ? true : c !== 0x20 && !WHITESPACE.test(value[i]!))) blank = false;
  }
  return !blank;
}

/** What String.prototype.trim removes (for one character). */
const WHITESPACE = /^\s$/;

function missingOrBad(column: string, value: unknown): RowError {
  if (value === null || value === undefined || value === '') {
    return new RowError(`missing_${column}`, `${column} is empty`);
  }
  return new RowError(
    `bad_${column}`,
    `${column} ${truncate(JSON.stringify(value))} is not a usable id (text or whole number, at most ${MAX_ID_LENGTH} characters, no control characters)`,
  );
}

function optionalText(value: unknown, column: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'string' && typeof value !== 'number') throw new RowError(`bad_${column}`, `${column} must be text`);
  const text = String(value);
  if (text === '') return undefined;
  if (CONTROL.test(text)) throw new RowError(`bad_${column}`, `${column} ${truncate(JSON.stringify(text))} contains control characters`);
  return text;
}

function optionalDigits(value: unknown, column: string): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !DIGITS.test(text)) {
    throw new RowError(`bad_${column}`, `${column} ${truncate(JSON.stringify(value))} must be an Optimizely id (digits only)`);
  }
  return text;
}

function integer(value: unknown, column: string, code: string): number | undefined {
  if (value === null || value === undefined) return undefined;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^-?\d+(\.0+)?$/.test(value.trim())) n = Number.parseInt(value, 10);
  else n = Number.NaN;
  if (!Number.isSafeInteger(n)) {
    const hint = column === 'revenue_cents' ? ' (revenue must be whole cents: $5.00 is 500)' : '';
    throw new RowError(code, `${column} ${truncate(JSON.stringify(value))} is not an integer${hint}`);
  }
  return n;
}

function finiteNumber(value: unknown, column: string): number | undefined {
  if (value === null || value === undefined) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  if (!Number.isFinite(n)) throw new RowError(`bad_${column}`, `${column} ${truncate(JSON.stringify(value))} is not a number`);
  return n;
}

/** Parses a json/jsonb/text column holding JSON; objects keep their written key order. */
/**
 * SQL NULL, or a JSON null: what ORMs such as SQLAlchemy store in a JSON column for "none" by
 * default. Either way the column says nothing, rather than rejecting every such row.
 */
function isNone(value: unknown): boolean {
  return value === null || value === undefined || (typeof value === 'string' && value.trim() === 'null');
}

function jsonEntries(value: unknown, column: string): Array<[string, unknown]> | undefined {
  if (isNone(value)) return undefined;
  if (typeof value === 'string') {
    const entries = orderedEntries(value);
    if (!entries) throw new RowError(`bad_${column}`, `${column} must be a JSON object, got ${truncate(value)}`);
    return entries;
  }
  if (typeof value === 'object' && !Array.isArray(value)) return Object.entries(value as Record<string, unknown>);
  throw new RowError(`bad_${column}`, `${column} must be a JSON object, got ${truncate(JSON.stringify(value))}`);
}

function jsonValue(value: unknown, column: string): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw new RowError(`bad_${column}`, `${column} is not valid JSON: ${truncate(value)}`);
  }
}

/**
 * JSON columns repeat: a night's rows carry a handful of distinct bucketing or tag objects.
 * Parsed values are kept by their text (and shared: nothing mutates a checked conversion), which
 * took JSON handling from about 1 s to 0.1 s of CPU per million rows. Bounded, so a column of
 * all-distinct values costs a cleared map now and then, not memory.
 */
const parsedJson = new Map<string, unknown>();
const PARSED_JSON_LIMIT = 10_000;

/**
 * The last text parsed per column, compared before the map is consulted: consecutive rows mostly
 * carry the same text, and comparing it costs less than building the map's key and hashing it.
 */
const lastParsed = new Map<string, { text: string; parsed: unknown }>();

function memo<T>(column: string, value: unknown, parse: () => T): T {
  if (typeof value !== 'string') return parse();
  const last = lastParsed.get(column);
  if (last !== undefined && last.text === value) return last.parsed as T;
  const key = `${column}\u0000${value}`;
  let parsed = parsedJson.get(key) as T | undefined;
  if (parsed === undefined) {
    parsed = parse();
    if (parsedJson.size >= PARSED_JSON_LIMIT) parsedJson.clear();
    parsedJson.set(key, parsed);
  }
  lastParsed.set(column, { text: value, parsed });
  return parsed;
}

/** For a row without segments or attributes: shared, and frozen, as every checked conversion is read only. */
const NO_SEGMENTS: Array<[string, string]> = Object.freeze([]) as unknown as Array<[string, string]>;
const NO_ATTRIBUTES: Attribute[] = Object.freeze([]) as unknown as Attribute[];

function experiments(row: Record<string, unknown>): Experiment[] {
  const fromJson = memo('experiments', row.experiments, () =>
    (jsonEntries(row.experiments, 'experiments') ?? []).map(([experimentId, variation]) => experiment(experimentId, variation)),
  );
  const flatExperiment = row.experiment_id;
  const flatVariation = row.variation_id;
  const hasFlat = (v: unknown): boolean => v !== null && v !== undefined && v !== '';
  if (!hasFlat(flatExperiment) && !hasFlat(flatVariation)) return fromJson;
  if (!hasFlat(flatExperiment) || !hasFlat(flatVariation)) {
    throw new RowError('bad_experiments', 'experiment_id and variation_id must both be set, or both empty');
  }
  const id = typeof flatExperiment === 'number' ? String(flatExperiment) : flatExperiment;
  if (typeof id !== 'string') throw new RowError('bad_experiments', 'experiment_id must be an Optimizely id (digits only)');
  return fromJson.some((e) => e.experimentId === id) ? fromJson : [...fromJson, experiment(id, flatVariation)];
}

function experiment(experimentId: string, variation: unknown): Experiment {
  if (!DIGITS.test(experimentId)) {
    throw new RowError('bad_experiments', `experiment id ${truncate(JSON.stringify(experimentId))} must be digits only`);
  }
  let ids: unknown[];
  if (Array.isArray(variation)) ids = variation;
  else if (typeof variation === 'number') ids = [String(variation)];
  else if (typeof variation === 'string') ids = variation.split('_');
  else ids = [variation];
  const variationIds = ids.map((v) => (typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : v));
  if (variationIds.length === 0 || !variationIds.every((v): v is string => typeof v === 'string' && DIGITS.test(v))) {
    throw new RowError(
      'bad_experiments',
      `variation of experiment ${experimentId} must be a variation id, "id_id" or a list of ids (digits only), got ${truncate(JSON.stringify(variation))}`,
    );
  }
  return { experimentId, variationIds };
}

function segments(value: unknown): Array<[string, string]> {
  if (isNone(value)) return NO_SEGMENTS;
  return memo('segments', value, () => parseSegments(value));
}

function parseSegments(value: unknown): Array<[string, string]> {
  const entries = jsonEntries(value, 'segments') ?? [];
  return entries.map(([id, v]) => {
    if (!DIGITS.test(id)) throw new RowError('bad_segments', `segment id ${truncate(JSON.stringify(id))} must be digits only`);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new RowError('bad_segments', `segment ${id} must have a text value`);
    }
    // JSON may spell half of a UTF-16 pair ("\ud83d", a string cut inside an emoji); such text
    // has no UTF-8 form, and encoding the classic URL threw, ending the whole run as a bug.
    if (typeof v === 'string' && LONE_SURROGATE.test(v)) {
      throw new RowError('bad_segments', `segment ${id} value ${truncate(JSON.stringify(v))} holds half of a UTF-16 surrogate pair (text cut inside a character); fix or drop the character`);
    }
    return [id, String(v)];
  });
}

function attributes(value: unknown): Attribute[] {
  if (isNone(value)) return NO_ATTRIBUTES;
  return memo('attributes', value, () => parseAttributes(value));
}

/**
 * JSON.parse reads every number as a double: an integer past 2^53 (a bigint order id put into
 * tags with jsonb_build_object) comes back with other digits, and 1e999 as Infinity, which
 * JSON.stringify writes as null. Such a number is refused, with the fix, rather than sent changed.
 */
function inexactNumber(v: unknown): boolean {
  return typeof v === 'number' && (!Number.isFinite(v) || (Number.isInteger(v) && !Number.isSafeInteger(v)));
}

const AS_TEXT = 'is a number too large to send exactly; cast it to text in the SQL (::text)';

function parseAttributes(value: unknown): Attribute[] {
  const list = jsonValue(value, 'attributes');
  if (!Array.isArray(list)) {
    throw new RowError('bad_attributes', 'attributes must be a JSON list of {"entity_id", "key", "value"} objects');
  }
  return list.map((item: unknown, i) => {
    const a = item as Record<string, unknown> | null;
    const entityId = a && (typeof a.entity_id === 'number' && Number.isSafeInteger(a.entity_id) ? String(a.entity_id) : a.entity_id);
    const v = a?.value;
    if (!a || typeof entityId !== 'string' || !DIGITS.test(entityId) || typeof a.key !== 'string' || a.key === '') {
      throw new RowError('bad_attributes', `attributes[${i}] needs "entity_id" (digits) and "key" (text)`);
    }
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new RowError('bad_attributes', `attributes[${i}].value must be text, a number or true/false`);
    }
    if (inexactNumber(v)) throw new RowError('bad_attributes', `attributes[${i}].value ${String(v)} ${AS_TEXT}`);
    return { type: typeof a.type === 'string' ? a.type : 'custom', entityId, key: a.key, value: v };
  });
}

function scalarObject(value: unknown, column: string): Record<string, string | number | boolean> | undefined {
  if (isNone(value)) return undefined;
  return memo(column, value, () => parseScalarObject(value, column));
}

function parseScalarObject(value: unknown, column: string): Record<string, string | number | boolean> {
  const parsed = jsonValue(value, column);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new RowError(`bad_${column}`, `${column} must be a JSON object of text, number or true/false values`);
  }
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new RowError(`bad_${column}`, `${column}.${k} must be text, a number or true/false`);
    }
    if (inexactNumber(v)) throw new RowError(`bad_${column}`, `${column}.${k} ${String(v)} ${AS_TEXT}`);
  }
  return parsed as Record<string, string | number | boolean>;
}

function truncate(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
