import type { Clock } from '../time/clock.ts';

/**
 * A destination-wide pause: when the endpoint answers with Retry-After, every request waits until
 * the pause ends before it takes a token, not only the one that was told. Otherwise the other
 * `concurrency − 1` requests keep hitting an endpoint that has just asked us to stop.
 */
export class PauseGate {
  readonly #clock: Clock;
  /** Monotonic ms at which the pause ends; only meaningful while `#active`. */
  #until = 0;
  /** Cheap flag for the hot path: false means "certainly not paused" without reading the clock. */
  #active = false;
  /** Length of the union of every pause so far, including the future part of the current one. */
  #total = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** True while a pause is (or may be) in force; `wait` settles it. */
  get active(): boolean {
    return this.#active;
  }

  /**
   * Pause for `ms` from now, or extend the current pause; never shortens it. Returns true when the
   * pause was extended (for logging once per pause, not once per throttled answer).
   */
  pauseFor(ms: number): boolean {
    const now = this.#clock.monotonic();
    const end = now + ms;
    const from = this.#active && this.#until > now ? this.#until : now;
    if (end <= from) return false;
    this.#total += end - from;
    this.#until = end;
    this.#active = true;
    return true;
  }

  /** Resolves once no pause is in force; rejects with the signal's reason on abort. */
  async wait(signal?: AbortSignal): Promise<void> {
    while (this.#active) {
      const left = this.#until - this.#clock.monotonic();
      if (left <= 0) {
        this.#active = false;
        return;
      }
      signal?.throwIfAborted();
      // Loop: the pause may have been extended while we slept.
      await this.#clock.sleep(left, signal);
    }
  }

  /** Total time paused so far (the union of overlapping pauses, up to now). */
  pausedMs(): number {
    const ahead = this.#active ? Math.max(0, this.#until - this.#clock.monotonic()) : 0;
    return this.#total - ahead;
  }
}
