import { setMaxListeners } from 'node:events';
import type { Dispatcher } from 'undici';
import { ConveyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Clock } from '../time/clock.ts';
import { AdaptiveRate } from './adaptive-rate.ts';
import { EndpointBreaker } from './endpoint-breaker.ts';
import { describeCause, endpointOf, type AttemptFailure, type Failure, type FailureKind } from './failure.ts';
import { createHttpClient, DEFAULT_TIMEOUTS, type HttpClient, type HttpTimeouts } from './http-client.ts';
import { PauseGate } from './pause-gate.ts';
import type { RateBudget } from './rate-budget.ts';
import type { OutboundRequest, SendResult } from './request.ts';
import { resolveRetryOptions, RetryPolicy, type AttemptOutcome, type Decision, type RetryOptions } from './retry-policy.ts';
import { Slots } from './slots.ts';
import { TokenBucket } from './token-bucket.ts';

/**
 * The delivery engine: between the ledger and the socket. For each request, in order:
 *
 *   concurrency slot → token at the effective rate, never during a Retry-After pause → send →
 *   classify (retry-policy.ts) → return, or give the slot back, wait the backoff, and go again.
 *
 * Decisions:
 * - A request waiting out its backoff does NOT hold a concurrency slot; it queues for one again
 *   (behind the requests already waiting). Holding it would let a few failing requests starve the
 *   healthy ones: with 30% 500s and up to 3.75 s of backoff, most slots would sit idle. Requests
 *   in flight still never exceed `concurrency` (the slot is held from the pause wait to the
 *   response): `stats().maxInFlight` proves it.
 * - A Retry-After pause is waited out inside the slot: every request is paused then anyway. The
 *   token bucket enforces it (pause-gate.ts), as the last wait before a request leaves, so a
 *   request already waiting for its token when the pause begins is held as well.
 * - 429/503 answers that carry a usable Retry-After do not use up `maxAttempts`; they are charged
 *   to `maxThrottledAttempts` (default 20) instead, so obeying a throttling endpoint does not turn
 *   into failures, and an endpoint that throttles forever still ends. `attempts` in the result
 *   counts every HTTP attempt, throttled or not.
 *
 * Graceful stop (`signal`): not started → `cancelled` (attempts 0); in flight → finishes (bounded
 * by the timeouts); waiting for a retry → `failed` "stopped before retry: …" with the last
 * attempt's failure (it may have reached the server). Nothing else can keep `send` waiting once
 * the signal fires.
 *
 * The engine stops itself the same way when `stopRunAfter` requests in a row fail for one cause
 * that will not pass (a 401, a TLS error, a name that does not resolve: endpoint-breaker.ts), and
 * says so on `breaker.signal`, which the run also stops reading on.
 *
 * A failed result carries its Failure (failure.ts): the cause, the endpoint without credentials,
 * and when. Built only for a request that fails, so a delivery costs nothing more.
 */

export interface DeliveryOptions {
  /** Injected network seam; default: the engine creates an Agent and closes it in close(). */
  dispatcher?: Dispatcher;
  clock: Clock;
  /** [0, 1); for backoff jitter. Default Math.random. */
  random?: () => number;
  logger: Logger;
  /** perSecond undefined = unlimited. */
  rateLimit: { perSecond?: number; concurrency: number };
  retry?: Partial<RetryOptions>;
  timeouts?: Partial<HttpTimeouts>;
  /**
   * What paces requests at `rateLimit.perSecond`, given the engine's pause gate: by default a token
   * bucket of this engine's own; a budget shared with other runners when the state store is
   * PostgreSQL (rate-budget.ts).
   */
  budget?: (gate: PauseGate) => RateBudget;
  /** AIMD on 429 (adaptive-rate.ts). Default true. */
  adaptive?: boolean;
  /** Graceful stop; see above. */
  signal?: AbortSignal;
  /**
   * Requests in a row failing for one cause that will not pass before the engine stops sending
   * (endpoint-breaker.ts). Default DEFAULT_STOP_RUN_AFTER; 0 never stops.
   */
  stopRunAfter?: number;
}

export interface DeliveryStats {
  /** HTTP attempts made (every try, retries included). */
  requests: number;
  delivered: number;
  refused: number;
  failed: number;
  cancelled: number;
  /** Attempts that were followed by another attempt. */
  retries: number;
  status429: number;
  status5xx: number;
  networkErrors: number;
  timeouts: number;
  /** Attempts that threw something the retry table does not know (not retried). */
  otherErrors: number;
  /** Total time the destination was paused by Retry-After. */
  pausedMs: number;
  /** Configured requests/s; null = unlimited. */
  configuredRate: number | null;
  /** Effective requests/s now (after AIMD); null = unlimited. */
  effectiveRate: number | null;
  minEffectiveRate: number | null;
  rateDecreases: number;
  inFlight: number;
  maxInFlight: number;
}

const STOPPED = Symbol('stopped');

/** One request on its way: what the slot task needs, and its retry budget so far. */
interface Sending {
  readonly request: OutboundRequest;
  counted: number;
  throttled: number;
  /** Set with a 'fail' decision: its failure, located (where, when). */
  failure?: Failure;
}

const finite = (rate: number): number | null => (rate === Infinity ? null : rate);

export class DeliveryEngine {
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #policy: RetryPolicy;
  readonly #http: HttpClient;
  /**
   * Caps requests in flight (from the pause wait to the response) at `concurrency`. When the run
   * stops, the requests still waiting for a slot leave at once and never start.
   */
  readonly #slots: Slots;
  /** `#attempt` bound once: the slot queue passes the request along, so no closure per attempt. */
  readonly #attemptInSlot = (sending: Sending): Promise<Decision | typeof STOPPED> => this.#attempt(sending);
  readonly #gate: PauseGate;
  readonly #bucket: RateBudget;
  readonly #adaptive: AdaptiveRate | undefined;
  readonly #configuredRate: number;
  /** Trips on a streak of failures that will not pass; aborting it stops this engine like `signal`. */
  readonly breaker: EndpointBreaker;
  #closed = false;

  #requests = 0;
  #delivered = 0;
  #refused = 0;
  #failed = 0;
  #cancelled = 0;
  #retries = 0;
  #status429 = 0;
  #status5xx = 0;
  #networkErrors = 0;
  #timeouts = 0;
  #otherErrors = 0;
  #inFlight = 0;
  #maxInFlight = 0;

  constructor(options: DeliveryOptions) {
    const { rateLimit } = options;
    if (!Number.isInteger(rateLimit.concurrency) || rateLimit.concurrency < 1) {
      throw new ConveyError(
        'CONFIG_INVALID',
        `rateLimit.concurrency must be an integer ≥ 1 (got ${JSON.stringify(rateLimit.concurrency)})`,
      );
    }
    const perSecond = rateLimit.perSecond;
    if (perSecond !== undefined && !(Number.isFinite(perSecond) && perSecond > 0)) {
      throw new ConveyError(
        'CONFIG_INVALID',
        `rateLimit.perSecond must be a positive number (got ${JSON.stringify(perSecond)})`,
        { hint: 'Leave it out for no rate limit.' },
      );
    }
    const timeouts: HttpTimeouts = { ...DEFAULT_TIMEOUTS };
    for (const key of ['connectMs', 'headersMs', 'bodyMs'] as const) {
      const value = options.timeouts?.[key];
      if (value === undefined) continue;
      if (!(Number.isFinite(value) && value > 0)) {
        throw new ConveyError('CONFIG_INVALID', `timeouts.${key} must be a positive number of ms (got ${JSON.stringify(value)})`, {
          hint: `Default: ${DEFAULT_TIMEOUTS[key]}.`,
        });
      }
      timeouts[key] = value;
    }

    this.breaker = new EndpointBreaker(options.stopRunAfter);
    this.#clock = options.clock;
    this.#logger = options.logger;
    // One signal for both ways of stopping: everything below (the slot queue, backoffs, pauses,
    // token waits) already stops on it, so a tripped breaker cancels exactly what SIGINT would.
    this.#signal = options.signal ? AbortSignal.any([options.signal, this.breaker.signal]) : this.breaker.signal;
    const clock = options.clock;
    this.#policy = new RetryPolicy(resolveRetryOptions(options.retry), {
      random: options.random ?? Math.random,
      now: () => clock.now(),
    });
    this.#http = createHttpClient({
      dispatcher: options.dispatcher,
      connections: rateLimit.concurrency,
      timeouts,
    });
    this.#slots = new Slots(rateLimit.concurrency);
    const signal = this.#signal;
    // Every request waiting on a backoff, a pause or a token listens for the stop: often more
    // than Node's default of 10 listeners, which would print a leak warning.
    if (signal) setMaxListeners(0, signal);
    // One listener for all requests: those queued for a slot leave at once; those in a slot finish.
    signal?.addEventListener('abort', () => this.#slots.stop(), { once: true });
    this.#gate = new PauseGate(clock);
    this.#configuredRate = perSecond ?? Infinity;
    // Either way the budget enforces this engine's pause gate, the last wait before a request leaves.
    this.#bucket = options.budget?.(this.#gate) ?? new TokenBucket(clock, this.#configuredRate, this.#gate);
    this.#adaptive =
      options.adaptive === false
        ? undefined
        : new AdaptiveRate({
            clock,
            limit: this.#configuredRate,
            onChange: (rate, reason) => {
              this.#bucket.setRate(rate, reason);
              const fields = { effectiveRate: finite(rate), configuredRate: finite(this.#configuredRate) };
              if (reason === 'throttled') this.#logger.warn('endpoint throttling (429): send rate lowered', fields);
              else this.#logger.debug('send rate raised', fields);
            },
          });
  }

  /** Deliver one request, retrying per the retry table. Never throws for HTTP or network trouble. */
  async send(request: OutboundRequest): Promise<SendResult> {
    if (this.#closed) {
      throw new ConveyError('INTERNAL', 'DeliveryEngine.send() called after close()', {
        hint: 'Await every send() before closing the engine.',
      });
    }
    const signal = this.#signal;
    const sending: Sending = { request, counted: 0, throttled: 0 };
    let attempts = 0;
    let last: Extract<Decision, { action: 'retry' }> | undefined;
    for (;;) {
      if (signal?.aborted) return this.#stopped(request, attempts, last);
      const decision = await this.#slots.run(this.#attemptInSlot, sending, STOPPED);
      if (decision === STOPPED) return this.#stopped(request, attempts, last);
      attempts++;

      switch (decision.action) {
        case 'deliver':
          this.#delivered++;
          this.#adaptive?.onSuccess();
          return { kind: 'delivered', status: decision.status, attempts };
        case 'refuse':
          this.#refused++;
          this.#adaptive?.onSuccess();
          return { kind: 'refused', status: decision.status, body: decision.body, attempts };
        case 'fail': {
          this.#count(decision.failure.kind, decision.status);
          if (decision.status === 429) this.#adaptive?.onThrottled();
          this.#failed++;
          const failure = sending.failure!;
          return decision.status === undefined
            ? { kind: 'failed', error: decision.error, attempts, failure }
            : { kind: 'failed', error: decision.error, status: decision.status, attempts, failure };
        }
        case 'retry':
          break;
      }

      this.#count(decision.failure.kind, decision.status);
      if (decision.status === 429) this.#adaptive?.onThrottled();
      this.#retries++;
      last = decision;
      if (decision.throttled) sending.throttled++;
      else sending.counted++;
      this.#logger.debug('retrying', { endpoint: endpointOf(request.url), attempts, cause: decision.failure.cause, error: decision.error });
      // A Retry-After pause is already in force (#attempt); the next attempt waits it out.
      if (decision.pauseMs > 0) continue;
      if (signal?.aborted) return this.#stopped(request, attempts, last);
      try {
        await this.#clock.sleep(decision.backoffMs, signal);
      } catch {
        return this.#stopped(request, attempts, last);
      }
    }
  }

  stats(): DeliveryStats {
    const adaptive = this.#adaptive;
    return {
      requests: this.#requests,
      delivered: this.#delivered,
      refused: this.#refused,
      failed: this.#failed,
      cancelled: this.#cancelled,
      retries: this.#retries,
      status429: this.#status429,
      status5xx: this.#status5xx,
      networkErrors: this.#networkErrors,
      timeouts: this.#timeouts,
      otherErrors: this.#otherErrors,
      pausedMs: Math.round(this.#gate.pausedMs()),
      configuredRate: finite(this.#configuredRate),
      effectiveRate: finite(this.#bucket.rate),
      minEffectiveRate: finite(adaptive ? adaptive.min() : this.#configuredRate),
      rateDecreases: adaptive ? adaptive.decreases() : 0,
      inFlight: this.#inFlight,
      maxInFlight: this.#maxInFlight,
    };
  }

  /** Close the engine's own dispatcher (waiting for requests in flight). Call after every send() settled. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#http.close();
  }

  /**
   * Inside a slot: the pause, the token, one HTTP exchange and the retry table's decision on it;
   * STOPPED if the run stops first. Never rejects.
   */
  async #attempt(sending: Sending): Promise<Decision | typeof STOPPED> {
    if (this.#signal?.aborted) return STOPPED;
    if (!this.#bucket.tryTake() && !(await this.#waitForToken())) return STOPPED;
    // Checked once more at the last moment: "not started" must mean it never left.
    if (this.#signal?.aborted) return STOPPED;
    this.#requests++;
    this.#adaptive?.recordSend();
    if (++this.#inFlight > this.#maxInFlight) this.#maxInFlight = this.#inFlight;
    let outcome: AttemptOutcome;
    try {
      outcome = await this.#http.request(sending.request);
    } catch (error) {
      outcome = { error };
    } finally {
      this.#inFlight--;
    }
    const decision = this.#policy.decide(outcome, sending);
    // Still inside the slot, for the same reason as the pause below: once the breaker trips, the
    // slot must not pass to a request waiting for it. In `send`, after the slot is given back,
    // one more request could leave.
    if (decision.action === 'fail') {
      sending.failure = this.#located(decision.failure, sending.request);
      this.#tripOn(sending.failure);
    } else {
      // Delivered, refused (400: the endpoint read it), or a retryable failure: the endpoint
      // answered in a way that can pass.
      this.breaker.passed();
    }
    // Still inside the slot: the pause must be in force before the slot passes to the next
    // request, or that one leaves during the pause the endpoint just asked for.
    if (decision.action === 'retry' && decision.pauseMs > 0 && this.#gate.pauseFor(decision.pauseMs)) {
      this.#bucket.paused?.(decision.pauseMs);
      this.#logger.warn('endpoint asked us to wait (Retry-After): destination paused', {
        pauseMs: Math.round(decision.pauseMs),
        status: decision.status,
      });
    }
    return decision;
  }

  /**
   * Inside a slot: wait for a token (which a pause withholds). Only called when none is free
   * right now, so the common path costs no promise. False when the run is stopping.
   */
  async #waitForToken(): Promise<boolean> {
    try {
      await this.#bucket.take(this.#signal);
      return true;
    } catch {
      return false; // only rejects when the signal aborts
    }
  }

  /** Counts a failure towards the breaker; when it trips, says so once (the signal stops the rest). */
  #tripOn(failure: Failure): void {
    const trip = this.breaker.failed(failure);
    if (!trip) return;
    this.#logger.error(`stopping: ${trip.requests} requests in a row failed with ${failure.cause} (${describeCause(failure)}); no further requests are sent`, {
      cause: failure.cause,
      endpoint: failure.endpoint,
      requests: trip.requests,
    });
  }

  /** Counts by kind: a connection that failed (refused, reset, TLS, DNS) is a network error. */
  #count(kind: FailureKind, status: number | undefined): void {
    if (kind === 'http') {
      if (status === 429) this.#status429++;
      else if (status !== undefined && status >= 500) this.#status5xx++;
    } else if (kind === 'timeout') this.#timeouts++;
    else if (kind === 'other') this.#otherErrors++;
    else this.#networkErrors++;
  }

  /** Only for a request that fails: where (without credentials) and when. */
  #located(failure: AttemptFailure, request: OutboundRequest): Failure {
    return { ...failure, endpoint: endpointOf(request.url), at: this.#clock.now() };
  }

  /** Stopped before its first attempt (cancelled) or before a retry: failed with the last attempt's failure. */
  #stopped(request: OutboundRequest, attempts: number, last: Extract<Decision, { action: 'retry' }> | undefined): SendResult {
    if (attempts === 0 || last === undefined) {
      this.#cancelled++;
      return { kind: 'cancelled', attempts: 0 };
    }
    this.#failed++;
    const failure = this.#located(last.failure, request);
    const error = `stopped before retry: ${last.error}`;
    return last.status === undefined ? { kind: 'failed', error, attempts, failure } : { kind: 'failed', error, status: last.status, attempts, failure };
  }
}

/** Same as `new DeliveryEngine(options)`, for callers that prefer a factory. */
export function createDeliveryEngine(options: DeliveryOptions): DeliveryEngine {
  return new DeliveryEngine(options);
}
