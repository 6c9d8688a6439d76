import { actionFor, describeCause, type Failure, type FailureKind } from '../delivery/failure.ts';

/**
 * What failed in a run, grouped by cause and endpoint: the shape of `failures` in the run summary
 * (text and --json), the run history and `convey status`. One group per (cause, endpoint).
 */
export interface FailureGroup {
  /** Stable key, e.g. "http_500", "tls_DEPTH_ZERO_SELF_SIGNED_CERT", "dns_ENOTFOUND", "timeout_headers". */
  cause: string;
  kind: FailureKind;
  status?: number;
  code?: string;
  /** The first 200 bytes of the answer, or the error's message (of the first failure seen). */
  message: string;
  /** Origin and path, never credentials or a query string. */
  endpoint: string;
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
        cause: f.cause,
        kind: f.kind,
        ...(f.status === undefined ? {} : { status: f.status }),
        ...(f.code === undefined ? {} : { code: f.code }),
        message: f.message,
        endpoint: f.endpoint,
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
