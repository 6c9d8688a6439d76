import type { Trip } from '../delivery/endpoint-breaker.ts';
import { actionFor, describeCause, fixFor, type Failure, type FailureKind } from '../delivery/failure.ts';
import type { RunMode } from '../state/sql/runs.ts';

/** What a failure was and where: the part of a failure the summary, its history and status keep. */
export interface FailureCause {
  /** Stable key, e.g. "http_500", "tls_DEPTH_ZERO_SELF_SIGNED_CERT", "dns_ENOTFOUND", "timeout_headers". */
  cause: string;
  kind: FailureKind;
  status?: number;
  code?: string;
  /** The first 200 bytes of the answer, or the error's message (of the first failure seen). */
  message: string;
  /** Origin and path, never credentials or a query string. */
  endpoint: string;
}

function causeOf(f: Failure): FailureCause {
  return {
    cause: f.cause,
    kind: f.kind,
    ...(f.status === undefined ? {} : { status: f.status }),
    ...(f.code === undefined ? {} : { code: f.code }),
    message: f.message,
    endpoint: f.endpoint,
  };
}

/**
 * What failed in a run, grouped by cause and endpoint: the shape of `failures` in the run summary
 * (text and --json), the run history and `convey status`. One group per (cause, endpoint).
 */
export interface FailureGroup extends FailureCause {
  /** Conversions that failed for this cause (each is kept and sent first by the next run). */
  conversions: number;
  /** ISO instants of the first and last failed attempt. */
  firstSeen: string;
  lastSeen: string;
  /** False: retrying cannot help until someone fixes something (TLS, DNS, 401/403/404, 3xx). */
  retryable: boolean;
  action: string;
}

interface Group {
  first: Failure;
  conversions: number;
  firstAt: number;
  lastAt: number;
}

/**
 * Failures collected by one step (a window sent, the open conversions retried), returned to the
 * run, which merges them. Adding is a map lookup: it happens only for conversions that failed.
 */
export class Failures {
  readonly #groups = new Map<string, Group>();

  /** One conversion failed with `failure` (the conversions of one request share it). */
  add(failure: Failure): void {
    const key = `${failure.cause}\u0000${failure.endpoint}`;
    const group = this.#groups.get(key);
    if (group === undefined) {
      this.#groups.set(key, { first: failure, conversions: 1, firstAt: failure.at, lastAt: failure.at });
      return;
    }
    group.conversions++;
    if (failure.at < group.firstAt) group.firstAt = failure.at;
    if (failure.at > group.lastAt) group.lastAt = failure.at;
  }

  merge(other: Failures): void {
    for (const [key, theirs] of other.#groups) {
      const ours = this.#groups.get(key);
      if (ours === undefined) this.#groups.set(key, { ...theirs });
      else {
        ours.conversions += theirs.conversions;
        ours.firstAt = Math.min(ours.firstAt, theirs.firstAt);
        ours.lastAt = Math.max(ours.lastAt, theirs.lastAt);
      }
    }
  }

  /** Most conversions first; the stable order of the cause key among equals. */
  list(job: string): FailureGroup[] {
    return [...this.#groups.values()]
      .map(({ first: f, conversions, firstAt, lastAt }): FailureGroup => ({
        ...causeOf(f),
        conversions,
        firstSeen: new Date(firstAt).toISOString(),
        lastSeen: new Date(lastAt).toISOString(),
        retryable: f.retryable,
        action: actionFor(f, job),
      }))
      .sort((a, b) => b.conversions - a.conversions || (a.cause < b.cause ? -1 : a.cause > b.cause ? 1 : 0));
  }
}

/**
 * The one line that goes on top of the summary and the log when a run failed for a cause retrying
 * cannot fix: the cause with the most conversions, and how many others there are.
 */
export function failureHeadline(groups: readonly FailureGroup[]): string | undefined {
  const fatal = groups.filter((g) => !g.retryable);
  const top = fatal[0];
  if (!top) return undefined;
  const more = fatal.length > 1 ? ` (and ${fatal.length - 1} more cause${fatal.length > 2 ? 's' : ''} that retrying cannot fix)` : '';
  const n = top.conversions.toLocaleString('en-US');
  return `not retryable: ${describeCause(top)} at ${top.endpoint}: ${n} conversion${top.conversions === 1 ? '' : 's'} not sent [${top.cause}]${more}; fix it, then the next run sends them`;
}

/**
 * A run the endpoint breaker stopped (delivery/endpoint-breaker.ts): `stopped` in the summary and
 * its --json. The cause is also one of the run's `failures`.
 */
export interface RunStop extends FailureCause {
  /** Requests in a row that failed with this cause. */
  requests: number;
  /** Conversions this run claimed and never attempted (counted `deferred`). */
  notAttempted: number;
  /** Conversions the ledger holds for the next run to send first: failed, deferred, in doubt. */
  waiting: number;
  action: string;
}

export function runStop(trip: Trip, counts: { notAttempted: number; waiting: number }, job: string): RunStop {
  const f = trip.failure;
  return {
    ...causeOf(f),
    requests: trip.requests,
    notAttempted: counts.notAttempted,
    waiting: counts.waiting,
    action: actionFor(f, job),
  };
}

/**
 * The first line of a stopped run's summary and log, and its record's error: what stopped it,
 * that nothing else went out, what was left, what to fix. The rest of the window (or of the
 * backfill) was never read: the next run reads on from the watermark, which did not pass it.
 */
export function stopHeadline(stop: RunStop, mode: RunMode): string {
  const n = (value: number): string => value.toLocaleString('en-US');
  const rest = mode === 'backfill' ? '; the same backfill command then resumes with the chunks left' : mode === 'run' ? ', then reads the rest of the window' : '';
  return (
    `stopped after ${stop.requests} requests in a row failed with ${stop.cause} at ${stop.endpoint} (${describeCause(stop)}): ` +
    `nothing else was sent or read; ${n(stop.notAttempted)} conversion${stop.notAttempted === 1 ? ' was' : 's were'} not attempted. ` +
    `${fixFor({ ...stop, retryable: false })} Then rerun: the next run sends the ${n(stop.waiting)} conversion${stop.waiting === 1 ? '' : 's'} kept in the ledger first${rest}.`
  );
}
