import { ConveyError } from '../errors.ts';
import { errorCode, errorFailure, statusFailure, type AttemptFailure } from './failure.ts';
import type { HttpResponse } from './http-client.ts';

/**
 * The one table that decides what happens after an attempt: delivered, refused, retried (and
 * after how long), or given up. Nothing else in convey decides whether to retry.
 *
 * | outcome                                   | decision                                        |
 * |-------------------------------------------|-------------------------------------------------|
 * | 1xx–2xx                                   | delivered                                       |
 * | 3xx                                       | failed at once: not followed (Optimizely never redirects, so a redirect means a wrong endpoint and nothing was processed); the next run sends it again |
 * | 429 or 503 with a usable Retry-After      | "throttled": pause the whole destination for Retry-After (capped at maxRetryAfterMs); does NOT use up an attempt, up to maxThrottledAttempts |
 * | 408, 429, 5xx (no usable Retry-After)     | retried with full-jitter backoff; counts as an attempt |
 * | 400, 413, 422 (the conversions are at fault) | refused with the server's body, never retried |
 * | other 4xx (401, 403, 404, 405, …)         | failed at once: the request went to the wrong place or without the right to; the next run sends it again |
 * | network error (RETRIED_ERROR_CODES)       | retried with backoff; counts as an attempt      |
 * | undici timeout (connect, headers, body)   | retried with backoff; counts as an attempt      |
 * | TLS error, a name that does not resolve   | failed at once: the same certificate, the same missing name next time; the next run sends it again |
 * | anything else thrown                      | failed at once (a bug or a bad request: retrying repeats it) |
 *
 * Retrying a POST that may have reached the server is safe because Optimizely de-duplicates
 * events with the same entity_id, uuid and timestamp (PROTOCOL.md §2), and destinations derive
 * those deterministically.
 */

export interface RetryOptions {
  /** Attempts per request, counting the first; throttled attempts (see above) are not counted. */
  maxAttempts: number;
  /** First backoff ceiling; doubles per counted attempt. */
  baseDelayMs: number;
  /** Backoff ceiling never exceeds this. */
  maxDelayMs: number;
  /** A longer Retry-After is cut to this (the endpoint is asked again after it). */
  maxRetryAfterMs: number;
  /** Throttled (Retry-After) answers one request may get before it fails: so a permanently throttling endpoint still ends. */
  maxThrottledAttempts: number;
}

/**
 * Defaults, stated once. 5 attempts with a 250 ms base reach a 2 s backoff ceiling on the last
 * retry (≈ 3.75 s worst case in total, 1.9 s on average): enough to ride out a connection reset
 * or a deploy behind a load balancer without holding a nightly run for minutes; a longer outage
 * fails the rows and the next run retries them. 300 s caps a Retry-After so one header cannot
 * stall the run for hours. 20 throttled answers at up to 300 s each bound a stuck request.
 */
export const DEFAULT_RETRY_OPTIONS: Readonly<RetryOptions> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 300_000,
  maxThrottledAttempts: 20,
});

/**
 * Error codes that mean "the network failed; the same request may well work again". Not here,
 * so failed at once: TLS errors (the same certificate comes back), ENOTFOUND (the name does not
 * exist; a resolver that did not answer says EAI_AGAIN), and anything unknown.
 */
const RETRIED_ERROR_CODES: ReadonlySet<string> = new Set([
  // From the brief and undici's own RetryHandler defaults (lib/handler/retry-handler.js).
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'EAI_AGAIN',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'ECONNABORTED',
  /** undici's SocketError: "other side closed", socket closed mid-response. */
  'UND_ERR_SOCKET',
  /** The server closed before sending all of the body its content-length promised. */
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

export type AttemptOutcome =
  | HttpResponse
  /** The request threw (network error, timeout, or something unexpected). */
  | { readonly status?: undefined; readonly error: unknown };

export type Decision =
  | { readonly action: 'deliver'; readonly status: number }
  | { readonly action: 'refuse'; readonly status: number; readonly body: string }
  | {
      readonly action: 'retry';
      readonly failure: AttemptFailure;
      readonly status: number | undefined;
      readonly error: string;
      /** Wait this long before the next attempt (this request only). 0 when `pauseMs` is set. */
      readonly backoffMs: number;
      /** Pause the whole destination this long (a Retry-After); 0 when not throttled. */
      readonly pauseMs: number;
      /** True: this attempt came back throttled and is charged to maxThrottledAttempts, not maxAttempts. */
      readonly throttled: boolean;
    }
  | {
      readonly action: 'fail';
      readonly failure: AttemptFailure;
      readonly status: number | undefined;
      readonly error: string;
    };

/** Attempts already charged to one request, before the one being decided. */
export interface AttemptBudget {
  readonly counted: number;
  readonly throttled: number;
}

/**
 * 4xx answers about the conversions themselves (malformed, too large, failed validation): each
 * becomes a reject with the server's answer. Any other 4xx gives every conversion the same
 * answer (wrong path, method, credentials): rejecting them all would turn a night's conversions
 * into rejects behind a successful run, so they fail instead, are kept, and the run exits 1.
 */
const CONTENT_STATUSES: ReadonlySet<number> = new Set([400, 413, 422]);

export class RetryPolicy {
  readonly options: Readonly<RetryOptions>;
  readonly #random: () => number;
  readonly #now: () => number;

  /** `now` is wall-clock epoch ms (for HTTP-date Retry-After); `random` returns [0, 1). */
  constructor(options: Readonly<RetryOptions>, deps: { random: () => number; now: () => number }) {
    this.options = options;
    this.#random = deps.random;
    this.#now = deps.now;
  }

  /** Decide what follows an attempt. Pure apart from `random` and `now`. */
  decide(outcome: AttemptOutcome, budget: AttemptBudget): Decision {
    const status = outcome.status;
    if (status === undefined) {
      const error = (outcome as { error: unknown }).error;
      const code = errorCode(error);
      const retried = code !== undefined && RETRIED_ERROR_CODES.has(code);
      const failure = errorFailure(error, retried);
      const message = describeError(error);
      if (!retried) return { action: 'fail', failure, status: undefined, error: message };
      return this.#retryOrFail(failure, undefined, message, undefined, budget);
    }
    if (status < 300) return { action: 'deliver', status };
    const response = outcome as HttpResponse;
    if (status < 400) {
      // Only the redirect's answer came back, not the endpoint's: recorded failed (kept, sent
      // again next run), never delivered. Not retried now: the same URL redirects again.
      const failure = statusFailure(response, false);
      const error = `HTTP ${status} ${failure.message}: not followed, Optimizely never redirects (check the destination's endpoint)`;
      return { action: 'fail', failure, status, error };
    }
    if (!isRetriedStatus(status)) {
      if (CONTENT_STATUSES.has(status)) return { action: 'refuse', status, body: response.body };
      const failure = statusFailure(response, false);
      const error = `${describeStatus(failure)}: an answer about the request, not its conversions (check the destination's endpoint and account)`;
      return { action: 'fail', failure, status, error };
    }
    const failure = statusFailure(response, true);
    const retryAfter =
      status === 429 || status === 503
        ? parseRetryAfter(response.headers['retry-after'], this.#now(), this.options.maxRetryAfterMs)
        : undefined;
    return this.#retryOrFail(failure, status, describeStatus(failure), retryAfter, budget);
  }

  /** Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): random() × min(max, base × 2^(attempt−1)). */
  backoffMs(attempt: number): number {
    const { baseDelayMs, maxDelayMs } = this.options;
    return this.#random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  }

  #retryOrFail(
    failure: AttemptFailure,
    status: number | undefined,
    error: string,
    retryAfterMs: number | undefined,
    budget: AttemptBudget,
  ): Decision {
    // A Retry-After of 0 (or a date already past) gives no pause to honour; it is treated as
    // absent, so an endpoint answering "429, Retry-After: 0" forever still runs out of attempts.
    if (retryAfterMs !== undefined && retryAfterMs > 0) {
      const throttled = budget.throttled + 1;
      if (throttled > this.options.maxThrottledAttempts) {
        return {
          action: 'fail',
          failure,
          status,
          error: `${error} (throttled ${throttled} times; giving up)`,
        };
      }
      return { action: 'retry', failure, status, error, backoffMs: 0, pauseMs: retryAfterMs, throttled: true };
    }
    const counted = budget.counted + 1;
    if (counted >= this.options.maxAttempts) return { action: 'fail', failure, status, error };
    return {
      action: 'retry',
      failure,
      status,
      error,
      backoffMs: this.backoffMs(counted),
      pauseMs: 0,
      throttled: false,
    };
  }
}

/** 408, 429 and every 5xx are retried; every other status ≥ 400 is the payload's fault. */
export function isRetriedStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

function describeError(error: unknown): string {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

/** The status and the answer's first bytes: short enough for a log line and a state-store column. */
function describeStatus(failure: AttemptFailure): string {
  return failure.message === '' ? `HTTP ${failure.status}` : `HTTP ${failure.status}: ${failure.message}`;
}

/**
 * Retry-After (RFC 9110 §10.2.3) as milliseconds from now: delta-seconds ("120"; decimals
 * tolerated) or an HTTP-date (relative to `nowEpochMs`, 0 when already past), capped at `maxMs`.
 * Undefined when absent or unreadable.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowEpochMs: number,
  maxMs: number,
): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (text === '') return undefined;
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    // Date.parse reads IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the obsolete forms, but
    // also "-5" or "7 8" (as years): an HTTP-date always names its month, so require letters.
    if (!/[a-z]{3}/i.test(text)) return undefined;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - nowEpochMs);
  }
  return Math.min(ms, maxMs);
}

/** Fill in defaults and check every field once, with messages that state the rule. */
export function resolveRetryOptions(partial: Partial<RetryOptions> = {}): RetryOptions {
  const options: RetryOptions = { ...DEFAULT_RETRY_OPTIONS };
  for (const [key, value] of Object.entries(partial) as Array<[keyof RetryOptions, unknown]>) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_RETRY_OPTIONS)) {
      throw new ConveyError('CONFIG_INVALID', `retry.${key} is not a retry option`, {
        hint: `Known options: ${Object.keys(DEFAULT_RETRY_OPTIONS).join(', ')}.`,
      });
    }
    const integer = key === 'maxAttempts' || key === 'maxThrottledAttempts';
    const min = key === 'maxAttempts' ? 1 : 0;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
      throw new ConveyError(
        'CONFIG_INVALID',
        `retry.${key} must be ${integer ? 'an integer' : 'a number'} ≥ ${min} (got ${JSON.stringify(value)})`,
        { hint: `Default: ${DEFAULT_RETRY_OPTIONS[key]}.` },
      );
    }
    options[key] = value;
  }
  if (options.maxDelayMs < options.baseDelayMs) {
    throw new ConveyError(
      'CONFIG_INVALID',
      `retry.maxDelayMs (${options.maxDelayMs}) must be ≥ retry.baseDelayMs (${options.baseDelayMs})`,
    );
  }
  return options;
}
