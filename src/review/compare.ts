import { createHash, hash } from 'node:crypto';
import { canonicalConversion, COMPARED_FIELDS, fieldTexts } from '../check/canonical.ts';
import { checkRow } from '../check/check-row.ts';
import type { JobConfig } from '../config/project.ts';
import type { Destination } from '../destinations/destination.ts';
import { checkedBatches, type CheckedBatch } from '../pipeline/checked-batches.ts';
import type { DescribedMapping } from '../source/mapping.ts';
import type { Source } from '../source/open.ts';
import type { Clock } from '../time/clock.ts';
import type { Queryable } from '../state/db.ts';
import { keyOf, lookup } from '../state/sql/ledger.ts';
import type { RejectInput } from '../state/sql/rejects.ts';
import type { Window } from '../time/window.ts';
import { SortedSpill, type Spillable } from './spill.ts';
import { teeSource } from './tee-source.ts';

/**
 * What a mapping change does to each conversion of one window, by what Optimizely will see. The
 * classes are listed by consequence, the worst first: Optimizely keeps the first copy of an
 * event, so a changed value of a conversion already sent has no effect, and a conversion sent
 * under a new key is counted twice.
 */
export const CHANGE_CLASSES = ['rekeyed', 'changed-sent', 'removed-sent', 'removed', 'changed', 'added', 'added-sent', 'unchanged'] as const;
export type ChangeClass = (typeof CHANGE_CLASSES)[number];

export interface Example {
  conversionId: string;
  event: string;
  visitorId: string;
  /** re-keyed: the key main sent it under. */
  was?: string;
  /** changed: the fields that differ, main → this change. */
  fields?: Record<string, { before: string | null; after: string | null }>;
}

export interface ClassTally {
  count: number;
  examples: Example[];
  /** changed, changed-sent: how many conversions each field changed in, with examples. */
  fields?: Record<string, { count: number; examples: Array<{ conversionId: string; before: string | null; after: string | null }> }>;
}

export interface SideSummary {
  read: number;
  conversions: number;
  /** Conversions the ledger already holds (sent, or claimed by an earlier run that its retry step finishes). */
  inLedger: number;
  rejectsByReason: Record<string, number>;
  rejectExamples: Record<string, Array<{ conversionId: string | null; reason: string }>>;
}

export interface Comparison {
  classes: Record<ChangeClass, ClassTally>;
  base: SideSummary;
  head: SideSummary;
  /** Times the source was read: 1 when the SQL did not change (both sides from the same rows). */
  reads: number;
}

/** One side of a compare: a job, its destination and its described mapping. */
export interface Side {
  job: JobConfig;
  destination: Destination;
  mapping: DescribedMapping;
}

export interface CompareDeps {
  source: Source;
  /** Undefined when no state exists yet: an empty ledger. */
  state: Queryable | undefined;
  signal: AbortSignal;
  clock: Clock;
  /** A private folder for the sorted spills (spill.ts: withSpillDir). */
  spillDir: string;
  /** Values that identify people (visitor ids, attribute values) are masked unless false. */
  mask: boolean;
}

const EXAMPLES = 5;
const FIELD_EXAMPLES = 3;

/** What is kept of each conversion on disk while the two sides are put in key order. */
interface Entry extends Spillable {
  /** conversion_id */
  id: string;
  event: string;
  /** 1 when the ledger holds its key. */
  sent: 0 | 1;
  /** Hash of the request content (what reaches Optimizely). */
  wire: string;
  /** COMPARED_FIELDS as text, as one JSON list: compared whole, read apart only when it differs. */
  fields: string;
}

/**
 * Compares what `base` and `head` make of the rows of `window`. Each side is read once through
 * `checkedBatches` (the code `run` reads, checks and encodes with); when both run the same SQL on
 * the same cursor, the rows are read once and given to both. Conversions are matched by ledger key
 * (destination, event, conversion_id) after both sides are sorted on disk, so memory stays flat
 * however large the window. `readTwice` reads even the same SQL twice (the determinism check).
 */
export async function compareSides(deps: CompareDeps, base: Side | undefined, head: Side, window: Window, options: { readTwice?: boolean } = {}): Promise<Comparison> {
  const baseSpill = new SortedSpill<Entry>(deps.spillDir, 'base');
  const headSpill = new SortedSpill<Entry>(deps.spillDir, 'head');
  const readers: Reader[] = [];
  let reads = 1;
  if (base && !options.readTwice && base.job.sql === head.job.sql && base.job.cursor === head.job.cursor) {
    const [a, b] = teeSource(deps.source);
    // The page size decides the queries, not the rows: both ask alike so the second is answered from the first.
    readers.push(reader(deps, a, { ...base, job: { ...base.job, pageSize: head.job.pageSize } }, baseSpill, window));
    readers.push(reader(deps, b, head, headSpill, window));
    await readInStep(readers[0]!, readers[1]!);
  } else {
    if (base) {
      readers.push(reader(deps, deps.source, base, baseSpill, window));
      await readAll(readers[0]!);
      reads = 2;
    }
    readers.push(reader(deps, deps.source, head, headSpill, window));
    await readAll(readers.at(-1)!);
  }
  const baseSummary = base ? readers[0]!.summary : emptySummary();
  const headSummary = readers.at(-1)!.summary;
  const classes = await merge(deps, baseSpill, headSpill, baseSummary, headSummary);
  return { classes, base: baseSummary, head: headSummary, reads };
}

interface Reader {
  batches: AsyncGenerator<CheckedBatch>;
  take(batch: CheckedBatch): Promise<void>;
  summary: SideSummary;
}

function emptySummary(): SideSummary {
  return { read: 0, conversions: 0, inLedger: 0, rejectsByReason: {}, rejectExamples: {} };
}

function reader(deps: CompareDeps, source: Source, { job, destination, mapping }: Side, spill: SortedSpill<Entry>, window: Window): Reader {
  const summary = emptySummary();
  let seq = 0;
  return {
    batches: checkedBatches(source, mapping, job, destination, window, { signal: deps.signal, clock: deps.clock }),
    summary,
    async take(batch) {
      summary.read += batch.read;
      batch.rejects.forEach((r) => countReject(summary, r));
      const existing = deps.state ? await lookup(deps.state, destination.key, batch.items) : undefined;
      for (const item of batch.items) {
        // The row passed these checks a moment ago; checked again for its fields, by the same code.
        const checked = checkRow(item.row, job.cursor);
        if (!checked.ok) continue;
        const sent = existing?.has(keyOf(item)) ? 1 : 0;
        await spill.add({
          key: `${destination.key}\u0000${item.event}\u0000${item.conversionId}`,
          seq: seq++,
          id: item.conversionId,
          event: item.event,
          sent,
          // One-shot hash: a Hash object per conversion was 10% of a compare's CPU.
          wire: hash('sha1', item.payload, 'base64'),
          fields: JSON.stringify(fieldTexts(canonicalConversion(checked.conversion))),
        });
      }
    },
  };
}

function countReject(summary: SideSummary, r: Pick<RejectInput, 'conversionId' | 'reasonCode' | 'reason'>): void {
  summary.rejectsByReason[r.reasonCode] = (summary.rejectsByReason[r.reasonCode] ?? 0) + 1;
  const examples = (summary.rejectExamples[r.reasonCode] ??= []);
  if (examples.length < 3) examples.push({ conversionId: r.conversionId ?? null, reason: r.reason });
}

async function readAll(r: Reader): Promise<void> {
  for await (const batch of r.batches) await r.take(batch);
}

/** Two readers of one tee'd source, pulled so that neither gets more than a batch ahead. */
async function readInStep(a: Reader, b: Reader): Promise<void> {
  let aDone = false;
  let bDone = false;
  while (!aDone || !bDone) {
    if (!aDone && (bDone || a.summary.read <= b.summary.read)) {
      const next = await a.batches.next();
      if (next.done) aDone = true;
      else await a.take(next.value);
    } else {
      const next = await b.batches.next();
      if (next.done) bDone = true;
      else await b.take(next.value);
    }
  }
}

const VISITOR = COMPARED_FIELDS.indexOf('visitor_id');
const OCCURRED = COMPARED_FIELDS.indexOf('occurred_at');
const REVENUE = COMPARED_FIELDS.indexOf('revenue_cents');
const ATTRIBUTES = COMPARED_FIELDS.indexOf('attributes');

/** A conversion looked for under another key: same visitor, time, event and revenue. */
interface Candidate extends Spillable {
  id: string;
  event: string;
  visitorId: string;
}

async function merge(deps: CompareDeps, baseSpill: SortedSpill<Entry>, headSpill: SortedSpill<Entry>, base: SideSummary, head: SideSummary): Promise<Record<ChangeClass, ClassTally>> {
  const classes = Object.fromEntries(CHANGE_CLASSES.map((c) => [c, { count: 0, examples: [] }])) as unknown as Record<ChangeClass, ClassTally>;
  const show = (value: string | null, field: number): string | null => (deps.mask ? maskField(value, field) : value);
  const example = (e: Entry, extra: Partial<Example> = {}): Example => ({ conversionId: e.id, event: e.event, visitorId: show(fieldsOf(e)[VISITOR]!, VISITOR) ?? '', ...extra });
  const tally = (cls: ChangeClass, e: Entry, extra?: Partial<Example>): void => {
    const t = classes[cls];
    t.count++;
    if (t.examples.length < EXAMPLES) t.examples.push(example(e, extra));
  };
  // Removed conversions main sent, and conversions this change adds: matched afterwards on
  // (visitor, time, event, revenue), in a second sort, to find the re-keyed ones.
  const removedSent = new SortedSpill<Candidate>(deps.spillDir, 'removed-sent');
  const added = new SortedSpill<Candidate>(deps.spillDir, 'added');
  let seq = 0;
  const candidate = (e: Entry): Candidate => {
    const fields = fieldsOf(e);
    return { key: JSON.stringify([fields[VISITOR], fields[OCCURRED], e.event, fields[REVENUE]]), seq: seq++, id: e.id, event: e.event, visitorId: show(fields[VISITOR]!, VISITOR) ?? '' };
  };

  const b = unique(baseSpill.sorted(), base);
  const h = unique(headSpill.sorted(), head);
  let x = await b.next();
  let y = await h.next();
  while (!x.done || !y.done) {
    if (!x.done && (y.done || x.value.key < y.value.key)) {
      base.conversions++;
      if (x.value.sent) {
        base.inLedger++;
        await removedSent.add(candidate(x.value));
      } else tally('removed', x.value);
      x = await b.next();
    } else if (!y.done && (x.done || y.value.key < x.value.key)) {
      head.conversions++;
      if (y.value.sent) {
        head.inLedger++;
        tally('added-sent', y.value);
      } else await added.add(candidate(y.value));
      y = await h.next();
    } else if (!x.done && !y.done) {
      base.conversions++;
      head.conversions++;
      if (x.value.sent) base.inLedger++;
      if (y.value.sent) head.inLedger++;
      if (x.value.wire === y.value.wire && x.value.fields === y.value.fields) tally('unchanged', y.value);
      else {
        const cls: ChangeClass = y.value.sent ? 'changed-sent' : 'changed';
        const fields = changedFields(x.value, y.value, show);
        tally(cls, y.value, { fields });
        const perField = (classes[cls].fields ??= {});
        for (const [name, change] of Object.entries(fields)) {
          const f = (perField[name] ??= { count: 0, examples: [] });
          f.count++;
          if (f.examples.length < FIELD_EXAMPLES) f.examples.push({ conversionId: y.value.id, ...change });
        }
      }
      x = await b.next();
      y = await h.next();
    }
  }
  await pairRekeyed(removedSent, added, classes);
  return classes;
}

/** The spill's records with repeats of a key taken out and counted as the run counts them: a duplicate reject. */
async function* unique(records: AsyncGenerator<Entry>, summary: SideSummary): AsyncGenerator<Entry, void> {
  let last: string | undefined;
  for await (const r of records) {
    if (r.key === last) {
      countReject(summary, { conversionId: r.id, reasonCode: 'duplicate_conversion', reason: `conversion ${r.id} (event ${r.event}) appears more than once in the window; only the first is sent` });
      continue;
    }
    last = r.key;
    yield r;
  }
}

const fieldsOf = (e: Entry): Array<string | null> => JSON.parse(e.fields) as Array<string | null>;

function changedFields(before: Entry, after: Entry, show: (v: string | null, field: number) => string | null): Record<string, { before: string | null; after: string | null }> {
  const out: Record<string, { before: string | null; after: string | null }> = {};
  const [a, b] = [fieldsOf(before), fieldsOf(after)];
  COMPARED_FIELDS.forEach((name, i) => {
    if (a[i] !== b[i]) out[name] = { before: show(a[i]!, i), after: show(b[i]!, i) };
  });
  // The request differs though no column does: a setting (project, account, revenue goal, src).
  if (!Object.keys(out).length) out['(settings)'] = { before: null, after: null };
  return out;
}

/**
 * A removed key main sent, and an added key this change would send, that agree on visitor, time,
 * event and revenue: the same conversion under a new key, which Optimizely would count again.
 * Paired one to one; added conversions left unpaired are simply added, removed ones removed.
 */
async function pairRekeyed(removedSent: SortedSpill<Candidate>, added: SortedSpill<Candidate>, classes: Record<ChangeClass, ClassTally>): Promise<void> {
  const r = removedSent.sorted();
  const a = added.sorted();
  let x = await r.next();
  let y = await a.next();
  const note = (cls: ChangeClass, c: Candidate, was?: string): void => {
    const t = classes[cls];
    t.count++;
    if (t.examples.length < EXAMPLES) t.examples.push({ conversionId: c.id, event: c.event, visitorId: c.visitorId, ...(was === undefined ? {} : { was }) });
  };
  while (!x.done || !y.done) {
    if (!x.done && (y.done || x.value.key < y.value.key)) {
      note('removed-sent', x.value);
      x = await r.next();
    } else if (!y.done && (x.done || y.value.key < x.value.key)) {
      note('added', y.value);
      y = await a.next();
    } else if (!x.done && !y.done) {
      note('rekeyed', y.value, x.value.id);
      x = await r.next();
      y = await a.next();
    }
  }
}

/**
 * Visitor ids and attribute values identify people: a report posted on a pull request shows a
 * stable stand-in (the first two characters and a short hash), enough to tell two examples of
 * the same visitor apart from two visitors.
 */
function maskField(value: string | null, field: number): string | null {
  if (value === null) return null;
  if (field === VISITOR) return maskValue(value);
  if (field === ATTRIBUTES) {
    const list = JSON.parse(value) as Array<Record<string, unknown>>;
    return JSON.stringify(list.map((a) => ({ ...a, value: maskValue(String(a.value)) })));
  }
  return value;
}

export function maskValue(value: string): string {
  return `${value.slice(0, 2)}…${createHash('sha256').update(value).digest('hex').slice(0, 6)}`;
}
