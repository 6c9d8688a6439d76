import type { Clock } from '../time/clock.ts';
import { Alarm } from './alarm.ts';
import type { PauseGate } from './pause-gate.ts';
import type { RateBudget } from './rate-budget.ts';

/**
 * A smooth token bucket (GCRA, "virtual scheduling"): it keeps `tat`, the virtual time at which
 * the next token is due, and every grant moves `tat` on by exactly one interval. The wait for a
 * token is computed from that virtual time, never from "now", so a timer that fires late (Node's
 * fire ≥ 1 ms late and round fractional delays up to whole milliseconds) does not push later
 * tokens back. Measured on a fake clock with Node-like timers (rounded up, 1.5 ms late): a bucket
 * that restarts its schedule from each late grant gave 466 tokens in 10 s at 50/s; this one 500.
 *
 * Slack: a grant may go up to `tolerance` ahead of its slot (the burst after idling) and up to
 * `forgiveness` behind it without the schedule restarting (a late timer is caught up, not lost).
 * The two always add up to SLACK_MS, because together they bound the rate: the grants in any
 * window of W ms belong to the slots of a window of W + SLACK_MS, so there are at most
 * R × (W + SLACK_MS) / 1000 of them (+1 for rounding). The rest of the 2% budget is for what
 * happens after the grant: the endpoint sees requests after a trip through undici, the socket and
 * its own event loop, and early in a run (new connections, cold JIT) that trip varies by ~10 ms.
 *
 * Pauses: given a PauseGate, the bucket grants nothing while a pause is in force, to a newcomer
 * or to a waiter, whatever the rate (unlimited included). A waiter's wake-up that falls inside a
 * pause sleeps on to its end, so a Retry-After that arrives while requests wait for their tokens
 * holds them too. After the pause the schedule restarts from its end (an idle bucket's rule), so
 * the requests held back do not leave in a burst.
 */

/**
 * 5 ms. Bursts after idling are at most max(1, R/200) tokens (no once-a-second burst), and a
 * timer up to 5 ms late loses nothing (Node timers fire 1–2 ms late on an idle loop). Measured
 * with fresh processes against a local node:http server, 3000 requests at 1000/s, busiest 1 s
 * window as seen by the server (5 runs each): SLACK_MS 10 → 1019–1030 (over budget: the
 * initial burst meets the new connections); 7 → 1008–1018; 5 → 1005–1019. Client-side the
 * busiest window is 1000 + SLACK_MS, as designed. Throughput was the same for all three (stalls
 * of a cold process are longer than any of them); a warm process reaches 99.8–100% of R.
 */
const SLACK_MS = 5;

interface Waiter {
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const resolved: Promise<void> = Promise.resolve();

export class TokenBucket implements RateBudget {
  readonly #clock: Clock;
  #rate = Infinity;
  /** Milliseconds per token. */
  #interval = 0;
  /** How far ahead of its slot a grant may go (the burst), in ms. */
  #tolerance = 0;
  /** How far behind its slot a grant may be and still keep the schedule (catch up), in ms. */
  #forgiveness = SLACK_MS;
  /** Virtual time (monotonic ms) at which the next token is due. */
  #tat = -Infinity;
  /** FIFO of callers waiting for a token; at most `concurrency` long in the engine. */
  readonly #queue: Waiter[] = [];
  /** The single pending wake-up for the head waiter. */
  readonly #alarm: Alarm;
  readonly #gate: PauseGate | undefined;

  /** `ratePerSecond` may be Infinity: every take is granted at once (outside a pause). */
  constructor(clock: Clock, ratePerSecond: number, gate?: PauseGate) {
    this.#clock = clock;
    this.#alarm = new Alarm(clock, () => this.#drain());
    this.#gate = gate;
    this.#configure(ratePerSecond);
  }

  /** Tokens per second (Infinity = unlimited). */
  get rate(): number {
    return this.#rate;
  }

  /** Number of callers waiting in `take`. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Change the rate now. Tokens already owed are converted to the new rate (a debt of 3 tokens
   * at the old rate stays a debt of 3 tokens), and waiters are re-planned at once: a bucket
   * recovering from 1/s to 1000/s does not leave its head waiter asleep for the old second.
   */
  setRate(ratePerSecond: number): void {
    if (ratePerSecond === this.#rate) return;
    const now = this.#clock.monotonic();
    const oldInterval = this.#interval;
    this.#configure(ratePerSecond);
    if (this.#tat > now && oldInterval > 0) {
      this.#tat = now + ((this.#tat - now) / oldInterval) * this.#interval;
    }
    this.#alarm.disarm();
    this.#drain();
  }

  /**
   * Take a token if one is available now and nobody is queued ahead (FIFO: a newcomer never
   * overtakes a waiter). Synchronous, so the unlimited and uncongested paths cost no promise.
   */
  tryTake(): boolean {
    if (this.#queue.length > 0) return false;
    if (this.#gate?.active && this.#gate.remaining() > 0) return false;
    if (this.#rate === Infinity) return true;
    const now = this.#clock.monotonic();
    if (now < this.#tat - this.#tolerance) return false;
    this.#grant(now);
    return true;
  }

  /** Wait (via `clock.sleep`) for a token, first come first served. Rejects with the signal's reason on abort. */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryTake()) return resolved;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => this.#abandon(waiter);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
      if (!this.#alarm.armed) this.#drain();
    });
  }

  #configure(ratePerSecond: number): void {
    if (!(ratePerSecond > 0)) {
      throw new RangeError(`token bucket rate must be a positive number or Infinity (got ${ratePerSecond})`);
    }
    this.#rate = ratePerSecond;
    this.#interval = ratePerSecond === Infinity ? 0 : 1000 / ratePerSecond;
    this.#tolerance = Math.max(0, SLACK_MS - this.#interval);
    this.#forgiveness = SLACK_MS - this.#tolerance;
  }

  #grant(now: number): void {
    // On schedule (or ahead, or only a little late): the next slot follows the virtual one.
    // Later than that: the caller was idle, so the schedule restarts from now.
    const base = now - this.#tat > this.#forgiveness ? now : this.#tat;
    this.#tat = base + this.#interval;
  }

  /** Grant every waiter whose token is due, then arm one wake-up for the next. */
  #drain(): void {
    const queue = this.#queue;
    if (queue.length === 0) return;
    const paused = this.#gate?.active ? this.#gate.remaining() : 0;
    if (paused > 0) {
      // A pause begun or extended since this wake-up was armed: sleep on to its end.
      this.#alarm.arm(paused);
      return;
    }
    if (this.#rate === Infinity) {
      for (const waiter of queue.splice(0)) this.#release(waiter);
      return;
    }
    const now = this.#clock.monotonic();
    while (queue.length > 0 && now >= this.#tat - this.#tolerance) {
      this.#grant(now);
      this.#release(queue.shift()!);
    }
    if (queue.length > 0) this.#alarm.arm(this.#tat - this.#tolerance - now);
  }

  #release(waiter: Waiter): void {
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve();
  }

  #abandon(waiter: Waiter): void {
    const at = this.#queue.indexOf(waiter);
    if (at >= 0) this.#queue.splice(at, 1);
    // The slot it would have had is not handed back: aborting is how a run stops, not a
    // steady-state event, and handing slots back would complicate the FIFO for no gain.
    if (this.#queue.length === 0) this.#alarm.disarm();
    waiter.reject(waiter.signal?.reason);
  }
}
