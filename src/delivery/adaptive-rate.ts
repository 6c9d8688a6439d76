import type { Clock } from '../time/clock.ts';

/**
 * AIMD on the send rate, driven by 429s (the way TCP backs off on loss): each throttled window
 * multiplies the effective rate by DECREASE_FACTOR, each quiet second adds INCREASE_FRACTION of
 * the ceiling back, never above the configured limit.
 *
 * With no configured limit (unlimited), a 429 sets the ceiling to the rate sent over the last
 * full second and starts limiting below it; once recovery reaches that ceiling the limit is lifted
 * again (the next 429 measures afresh). A 429 before a full second of sending is not acted on:
 * there is no rate to cut yet, and a guess from a few early requests (measured: 1 request then a
 * 429 gave "4/s") throttles the burst that follows to a crawl.
 */

/** TCP Reno halves; 0.7 (CUBIC's β) backs off firmly without collapsing throughput on one 429. */
export const DECREASE_FACTOR = 0.7;

/**
 * A burst of 429s from one window is one signal: responses to requests sent before the decrease
 * keep arriving for about one round trip after it. A second covers any sane round trip.
 */
export const DECREASE_WINDOW_MS = 1000;

/** After this long without a 429, and at this interval, the rate steps up. */
const INCREASE_EVERY_MS = 1000;

/** Step per quiet second, as a fraction of the ceiling: from ×0.7 back to the limit in 6 s. */
export const INCREASE_FRACTION = 0.05;

/** Never below this fraction of the ceiling, nor below 1/s (so a stuck endpoint is still probed). */
export const FLOOR_FRACTION = 0.01;
export const FLOOR_MIN_PER_SECOND = 1;

export interface AdaptiveRateOptions {
  clock: Clock;
  /** Configured rate per second; Infinity = unlimited. */
  limit: number;
  /** Called whenever the effective rate changes (Infinity = unlimited again). */
  onChange?: (rate: number, reason: 'throttled' | 'recovering') => void;
}

export class AdaptiveRate {
  readonly #clock: Clock;
  readonly #limit: number;
  readonly #onChange: AdaptiveRateOptions['onChange'];
  #current: number;
  #min: number;
  #decreases = 0;
  /** What recovery climbs back to: the limit, or (unlimited) the rate seen at the first 429. */
  #ceiling: number;
  #lastDecreaseAt = -Infinity;
  #last429At = -Infinity;
  #lastIncreaseAt = -Infinity;
  // Sends per second while unlimited, to know what rate a 429 answered.
  #windowStart = -Infinity;
  #windowCount = 0;
  #previousWindowCount = 0;

  constructor(options: AdaptiveRateOptions) {
    if (!(options.limit > 0)) throw new RangeError(`adaptive rate limit must be positive (got ${options.limit})`);
    this.#clock = options.clock;
    this.#limit = options.limit;
    this.#onChange = options.onChange;
    this.#current = options.limit;
    this.#min = options.limit;
    this.#ceiling = options.limit;
  }

  /** Effective rate per second now (Infinity = unlimited). */
  current(): number {
    return this.#current;
  }

  /** Lowest effective rate reached so far. */
  min(): number {
    return this.#min;
  }

  /** How many times the rate was cut. */
  decreases(): number {
    return this.#decreases;
  }

  /** Note a request leaving. Only does work while unlimited (the only time the rate is unknown). */
  recordSend(): void {
    if (this.#current !== Infinity) return;
    const now = this.#clock.monotonic();
    const age = now - this.#windowStart;
    if (age >= 1000) {
      this.#previousWindowCount = age < 2000 ? this.#windowCount : 0;
      this.#windowStart = now;
      this.#windowCount = 0;
    }
    this.#windowCount++;
  }

  /** A 429 arrived. Returns true when it cut the rate (the first of its window). */
  onThrottled(): boolean {
    const now = this.#clock.monotonic();
    this.#last429At = now;
    if (now - this.#lastDecreaseAt < DECREASE_WINDOW_MS) return false;
    if (this.#current === Infinity) {
      const observed = this.#observedRate(now);
      if (observed === undefined) return false;
      this.#ceiling = Math.max(FLOOR_MIN_PER_SECOND, observed);
    }
    const base = this.#current === Infinity ? this.#ceiling : this.#current;
    const next = Math.max(this.#floor(), base * DECREASE_FACTOR);
    this.#lastDecreaseAt = now;
    if (next >= this.#current) return false;
    this.#decreases++;
    this.#set(next, 'throttled');
    return true;
  }

  /** An attempt got an answer that was not a 429. Steps the rate up after a quiet second. */
  onSuccess(): void {
    if (this.#current === this.#limit) return;
    const now = this.#clock.monotonic();
    if (now - this.#last429At < INCREASE_EVERY_MS || now - this.#lastIncreaseAt < INCREASE_EVERY_MS) return;
    this.#lastIncreaseAt = now;
    const next = this.#current + this.#ceiling * INCREASE_FRACTION;
    // Unlimited: back at the ceiling means the limit comes off again.
    this.#set(next >= this.#ceiling ? this.#limit : next, 'recovering');
  }

  #floor(): number {
    return Math.min(this.#ceiling, Math.max(FLOOR_MIN_PER_SECOND, this.#ceiling * FLOOR_FRACTION));
  }

  /** Sends in the last full second, or undefined when there has not been one. */
  #observedRate(now: number): number | undefined {
    const age = now - this.#windowStart;
    if (age >= 1000 && age < 2000) return this.#windowCount;
    if (age < 1000 && this.#previousWindowCount > 0) return this.#previousWindowCount;
    return undefined;
  }

  #set(rate: number, reason: 'throttled' | 'recovering'): void {
    this.#current = rate;
    if (rate < this.#min) this.#min = rate;
    this.#onChange?.(rate, reason);
  }
}
