import { ConveyError } from '../errors.ts';
import type { Failure } from './failure.ts';

/**
 * Stops a run that sends to an endpoint refusing every request for a reason that will not pass by
 * itself: a bad token (401), no right (403), no such endpoint (404), a redirect, a certificate
 * nobody vouches for, a host name that does not exist. Without it such a run goes on through the
 * whole window: 40,000 classic requests all answered 401, each conversion recorded failed.
 *
 * The rule: `threshold` requests in a row whose last attempt failed with the same cause that
 * `stopsRun` accepts, none delivered or refused between them, trip it. Anything else resets the
 * count: a delivery, a 400 (the endpoint read the request), a retryable failure (500, 429, a reset,
 * a timeout: these pass, and their own retries end them), a different cause. Once tripped it
 * stays tripped for the rest of the run and aborts `signal`; the delivery engine stops on it
 * exactly as on SIGINT (requests not started are cancelled, those in flight finish), and the run
 * stops reading (pipeline/run-job.ts). What was claimed and not sent is recorded deferred, what
 * failed is recorded failed: the next run sends both first, then reads on from the watermark,
 * which never passed a row that was not claimed.
 *
 * No clock: "in a row" is the order in which answers come back, which is all the evidence there is.
 */

/**
 * 20 requests: above the default concurrency (16), so the streak spans more than the first wave of
 * requests that all left at the same instant (one shared blip, a token rotated mid-request, would
 * fail those together); and small against what it saves (a window is thousands of requests on the
 * classic endpoint, one per conversion). A false trip costs one stopped run, never a conversion:
 * the next run sends what this one left.
 */
export const DEFAULT_STOP_RUN_AFTER = 20;

/** Why the run stopped: the failure that tripped the breaker and how many requests in a row failed with its cause. */
export interface Trip {
  readonly failure: Failure;
  readonly requests: number;
}

export class EndpointBreaker {
  readonly #threshold: number;
  readonly #controller = new AbortController();
  #cause: string | undefined;
  #streak = 0;
  #trip: Trip | undefined;

  /** `threshold` 0: never trips (the job's `retry.stopRunAfter: 0`). */
  constructor(threshold = DEFAULT_STOP_RUN_AFTER) {
    if (!Number.isInteger(threshold) || threshold < 0) {
      throw new ConveyError('CONFIG_INVALID', `retry.stopRunAfter must be an integer ≥ 0 (got ${JSON.stringify(threshold)})`, {
        hint: `Default: ${DEFAULT_STOP_RUN_AFTER}; 0 never stops a run early.`,
      });
    }
    this.#threshold = threshold;
  }

  /** Aborts when the breaker trips; its reason is the Trip. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get tripped(): Trip | undefined {
    return this.#trip;
  }

  /** Any answer that was not such a failure: delivered, refused (400), or a retryable failure. */
  passed(): void {
    this.#streak = 0;
    this.#cause = undefined;
  }

  /** A request failed for good; returns the Trip when this failure is the one that trips it. */
  failed(failure: Failure): Trip | undefined {
    if (this.#trip || this.#threshold === 0) return undefined;
    if (!stopsRun(failure)) {
      this.passed();
      return undefined;
    }
    if (failure.cause !== this.#cause) {
      this.#cause = failure.cause;
      this.#streak = 0;
    }
    if (++this.#streak < this.#threshold) return undefined;
    this.#trip = { failure, requests: this.#streak };
    this.#controller.abort(this.#trip);
    return this.#trip;
  }
}

/**
 * Causes that say every request to this endpoint will fail the same way until someone changes
 * something: TLS errors, a name that does not resolve, 3xx and the 4xx that are about the
 * endpoint, the account or the credentials. Not here, though not retryable either:
 * - `other` (an error convey does not classify), 414 and 431 (this request's URL or headers are
 *   too long): they can be about one conversion. Stopping on them could leave a job stuck, since
 *   the next run sends its failed conversions first and would stop on the same ones again.
 * - network errors that are not retried (EADDRNOTAVAIL: this machine ran out of ports): passing.
 */
export function stopsRun(failure: Pick<Failure, 'kind' | 'status' | 'retryable'>): boolean {
  if (failure.retryable) return false;
  switch (failure.kind) {
    case 'tls':
    case 'dns':
      return true;
    case 'http':
      return failure.status !== 414 && failure.status !== 431;
    default:
      return false;
  }
}
