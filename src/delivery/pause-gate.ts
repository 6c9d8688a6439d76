import type { Clock } from '../time/clock.ts';

/**
 * A destination-wide pause: when the endpoint answers with Retry-After, no request may leave
 * until the pause ends, not only the one that was told. Otherwise the other `concurrency − 1`
 * keep hitting an endpoint that has just asked us to stop.
 *
 * The gate only keeps the time; the token bucket (token-bucket.ts) enforces it, because that is
 * the last thing every request waits on before it leaves. A request already waiting for a token
 * when the pause begins is then held too, whatever it was waiting on: a gate checked only before
 * the token let such requests out 150–850 ms into a 1 s pause.
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

  /** True while a pause is (or may be) in force; `remaining` settles it. */
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

  /** Milliseconds until the pause ends; 0 (and no longer active) when none is in force. */
  remaining(): number {
    if (!this.#active) return 0;
    const left = this.#until - this.#clock.monotonic();
    if (left > 0) return left;
    this.#active = false;
    return 0;
  }

  /** Total time paused so far (the union of overlapping pauses, up to now). */
  pausedMs(): number {
    const ahead = this.#active ? Math.max(0, this.#until - this.#clock.monotonic()) : 0;
    return this.#total - ahead;
  }
}
