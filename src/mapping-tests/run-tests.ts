import { isDeepStrictEqual } from 'node:util';
import { canonicalConversion, type CanonicalConversion } from '../check/canonical.ts';
import { checkRow } from '../check/check-row.ts';
import type { JobConfig } from '../config/project.ts';
import type { Destination, Encoded } from '../destinations/destination.ts';
import { isConveyError, type ConveyError } from '../errors.ts';
import { checkedBatches, describeJobMapping, duplicateReject } from '../pipeline/checked-batches.ts';
import type { Clock } from '../time/clock.ts';
import type { FixtureSession, ReviewEngine } from '../source/review.ts';
import { keyOf } from '../state/sql/ledger.ts';
import type { Expectations, MappingTest, TestsDocument, TestsFile } from './tests-file.ts';

/** What the mapping did with one test's rows: what `--record` writes as the expectations. */
export interface Actual {
  conversions: CanonicalConversion[];
  rejects: Array<{ conversion_id: string | null; reason: string; message: string }>;
  requests: Array<{ method: string; url: string; body?: unknown }>;
  alreadySent: string[];
}

export interface TestOutcome {
  name: string;
  passed: boolean;
  /** One line per difference: `A1.revenue_cents: expected -500, got 500`. */
  failures: string[];
  actual?: Actual;
}

/**
 * Runs each test of the file in its own transaction on `session`: the fixture tables are made and
 * filled, the job's SQL is read through `checkedBatches` (the read, check and encode code of
 * `run`), the ledger is the test's own list, nothing is sent; then everything is rolled back.
 */
export async function runMappingTests(
  session: FixtureSession,
  engine: ReviewEngine,
  job: JobConfig,
  destination: Destination,
  file: TestsFile,
  clock: Clock,
  only?: (test: MappingTest) => boolean,
): Promise<TestOutcome[]> {
  const outcomes: TestOutcome[] = [];
  for (const test of file.tests) {
    if (only && !only(test)) continue;
    await session.begin();
    try {
      const actual = await runOne(session, job, destination, file, test, clock);
      const failures = compare(test.expect, actual);
      outcomes.push({ name: test.name, passed: failures.length === 0, failures, actual });
    } catch (error) {
      if (!isConveyError(error, 'MAPPING_INVALID') && !isConveyError(error, 'SOURCE_ERROR') && !isConveyError(error, 'CONFIG_INVALID')) throw error;
      outcomes.push({ name: test.name, passed: false, failures: [explain(error, engine, session)] });
    } finally {
      await session.rollback().catch(() => undefined);
    }
  }
  return outcomes;
}

function explain(error: ConveyError, engine: ReviewEngine, session: FixtureSession): string {
  const missing = engine.missingFunction(error);
  if (missing && !session.temporary) {
    return `${error.message}\n  the embedded engine, ${engine.embeddedLabel}, has no ${missing}: the warehouse may have it; run convey test --on-source to use the source's own engine, or write the SQL with functions both have`;
  }
  return error.hint ? `${error.message}\n  ${error.hint}` : error.message;
}

async function runOne(session: FixtureSession, job: JobConfig, destination: Destination, file: TestsFile, test: MappingTest, clock: Clock): Promise<Actual> {
  for (const [table, columns] of file.tables) {
    await session.createTable(table, columns);
    const rows = test.rows.get(table);
    if (rows?.length) await session.insertRows(table, columns, rows);
  }
  const mapping = await describeJobMapping(session.source, job, destination, test.window);
  const actual: Actual = { conversions: [], rejects: [], requests: [], alreadySent: [] };
  const sent = new Set(test.sent);
  const seen = new Set<string>();
  for await (const batch of checkedBatches(session.source, mapping, job, destination, test.window, { clock })) {
    for (const r of batch.rejects) actual.rejects.push({ conversion_id: r.conversionId ?? null, reason: r.reasonCode, message: r.reason });
    const sending: Encoded[] = [];
    for (const item of batch.items) {
      const row = item.row;
      const checked = checkRow(row, job.cursor);
      if (!checked.ok) continue;
      if (seen.has(keyOf(item))) {
        const r = duplicateReject(item, row);
        actual.rejects.push({ conversion_id: item.conversionId, reason: r.reasonCode, message: r.reason });
        continue;
      }
      seen.add(keyOf(item));
      actual.conversions.push(canonicalConversion(checked.conversion));
      if (sent.has(item.conversionId)) actual.alreadySent.push(item.conversionId);
      else sending.push(item);
    }
    for (const planned of destination.requests(sending)) {
      const { method, url, body } = planned.request;
      actual.requests.push({ method, url, ...(body ? { body: JSON.parse(body) as unknown } : {}) });
    }
  }
  return actual;
}

/** Each expectation against what happened; subset matches, one line per difference. */
export function compare(expect: Expectations, actual: Actual): string[] {
  const failures: string[] = [];
  const show = (v: unknown): string => (v === undefined ? 'none' : JSON.stringify(v));
  for (const e of expect.conversions ?? []) {
    const got = actual.conversions.find((c) => c.conversion_id === e.conversion_id);
    if (!got) {
      const rejected = actual.rejects.find((r) => r.conversion_id === e.conversion_id);
      failures.push(`${e.conversion_id}: expected a conversion, got ${rejected ? `a reject (${rejected.reason}: ${rejected.message})` : 'none'}`);
      continue;
    }
    for (const [field, value] of Object.entries(e)) {
      if (field === 'conversion_id') continue;
      if (!isDeepStrictEqual(got[field] ?? null, value)) failures.push(`${e.conversion_id}.${field}: expected ${show(value)}, got ${show(got[field])}`);
    }
  }
  for (const e of expect.rejects ?? []) {
    const id = e.conversion_id ?? null;
    if (actual.rejects.some((r) => r.conversion_id === id && r.reason === e.reason)) continue;
    const other = actual.rejects.find((r) => r.conversion_id === id);
    const converted = id !== null && actual.conversions.some((c) => c.conversion_id === id);
    failures.push(`${id ?? '(no conversion_id)'}: expected a reject for ${e.reason}, got ${other ? `${other.reason} (${other.message})` : converted ? 'a conversion' : 'nothing'}`);
  }
  (expect.requests ?? []).forEach((e, i) => {
    const got = actual.requests[i];
    if (!got) return failures.push(`requests[${i}]: expected a request, got ${actual.requests.length} request(s) in all`);
    for (const field of ['method', 'url', 'body'] as const) {
      if (e[field] !== undefined && !isDeepStrictEqual(got[field], e[field])) failures.push(`requests[${i}].${field}: expected ${show(e[field])}, got ${show(got[field])}`);
    }
  });
  for (const id of expect.alreadySent ?? []) {
    if (!actual.alreadySent.includes(id)) failures.push(`${id}: expected to be skipped as already sent, got ${actual.conversions.some((c) => c.conversion_id === id) ? 'sent' : 'no such conversion'}`);
  }
  return failures;
}

/** `document` with each test that ran given what its mapping did as its expectations (`--record`). */
export function withRecorded(document: TestsDocument, outcomes: readonly TestOutcome[]): TestsDocument {
  const out = structuredClone(document);
  for (const outcome of outcomes) {
    const test = out.tests.find((t) => t.name === outcome.name);
    if (test && outcome.actual) test.expect = recorded(outcome.actual);
  }
  return out;
}

/** The expectations `--record` writes: everything the mapping did, for the author to review in the diff. */
function recorded(actual: Actual): Expectations {
  return {
    conversions: actual.conversions as Expectations['conversions'],
    rejects: actual.rejects.map((r) => ({ conversion_id: r.conversion_id, reason: r.reason })),
    requests: actual.requests,
    ...(actual.alreadySent.length ? { alreadySent: actual.alreadySent } : {}),
  };
}
