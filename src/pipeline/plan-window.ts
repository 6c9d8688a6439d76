import type { JobConfig } from '../config/project.ts';
import type { Destination } from '../destinations/destination.ts';
import type { OutboundRequest } from '../delivery/request.ts';
import type { DescribedMapping } from '../source/mapping.ts';
import type { Source } from '../source/open.ts';
import type { Clock } from '../time/clock.ts';
import type { Window } from '../time/window.ts';
import type { Queryable } from '../state/db.ts';
import { countOpen, keyOf, lookup, type ExistingEntry } from '../state/sql/ledger.ts';
import type { RejectInput } from '../state/sql/rejects.ts';
import { checkedBatches, duplicateReject, type Item } from './checked-batches.ts';
import type { Transport } from './transport.ts';

export interface PlanResult {
  job: string;
  window: Window;
  read: number;
  wouldSend: number;
  alreadySent: number;
  wouldReject: number;
  /** Rows whose conversion is failed, deferred or pending: the run's retry step sends those. */
  skipped: number;
  rejectsByReason: Record<string, number>;
  /** A few rejects per reason, to show what is wrong. */
  rejectExamples: Record<string, Array<{ conversionId: string | null; reason: string }>>;
  /** What the run would send first, from earlier runs (no source read needed). */
  openFromEarlierRuns: { failed: number; deferred: number; inDoubt: number };
  requests: number;
  samples: OutboundRequest[];
}

export interface PlanDeps {
  /** Undefined when no state exists yet: an empty ledger. */
  state: Queryable | undefined;
  source: Source;
  mapping: DescribedMapping;
  clock: Clock;
  destination: Destination;
  job: JobConfig;
  signal: AbortSignal;
  /** Every would-be request goes here (plan --out, run --dry-run). */
  out?: Transport;
  onProgress?: (result: PlanResult) => void;
}

const EXAMPLES_PER_REASON = 3;

/**
 * What a run over `window` would do, without writing anything: every row is read and checked
 * exactly as `run` checks it and compared with the ledger. Read-only, so a key repeated across
 * batches is found with an in-memory set of the would-be-sent keys (a run finds it in the ledger).
 */
export async function planWindow(deps: PlanDeps, window: Window, options: { samples: number }): Promise<PlanResult> {
  const { destination } = deps;
  const result: PlanResult = {
    job: deps.job.name,
    window,
    read: 0,
    wouldSend: 0,
    alreadySent: 0,
    wouldReject: 0,
    skipped: 0,
    rejectsByReason: {},
    rejectExamples: {},
    openFromEarlierRuns: deps.state ? await countOpen(deps.state, deps.job.name) : { failed: 0, deferred: 0, inDoubt: 0 },
    requests: 0,
    samples: [],
  };
  const willSend = new Set<string>();
  const reject = (r: RejectInput): void => {
    result.wouldReject++;
    result.rejectsByReason[r.reasonCode] = (result.rejectsByReason[r.reasonCode] ?? 0) + 1;
    const examples = (result.rejectExamples[r.reasonCode] ??= []);
    if (examples.length < EXAMPLES_PER_REASON) examples.push({ conversionId: r.conversionId ?? null, reason: r.reason });
  };

  for await (const batch of checkedBatches(deps.source, deps.mapping, deps.job, destination, window, { clock: deps.clock, signal: deps.signal })) {
    result.read += batch.read;
    batch.rejects.forEach(reject);
    const existing = deps.state ? await lookup(deps.state, destination.key, batch.items) : new Map<string, ExistingEntry>();
    const sending: Item[] = [];
    for (const item of batch.items) {
      const key = keyOf(item);
      const entry = existing.get(key);
      if (entry?.status === 'sent') result.alreadySent++;
      else if (entry) result.skipped++;
      else if (willSend.has(key)) reject(duplicateReject(item, item.row));
      else {
        willSend.add(key);
        sending.push(item);
      }
    }
    result.wouldSend += sending.length;
    for (const planned of destination.requests(sending)) {
      result.requests++;
      if (result.samples.length < options.samples) result.samples.push(planned.request);
      await deps.out?.send(planned.request);
    }
    deps.onProgress?.(result);
  }
  return result;
}
