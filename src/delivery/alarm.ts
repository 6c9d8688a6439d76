import type { Clock } from '../time/clock.ts';

/**
 * One pending wake-up on the clock, re-armed at will: what the token bucket and the leased budget
 * use to grant the next waiter when its slot comes. Arming again (or disarming) cancels the one
 * before, so only the latest plan ever fires.
 */
export class Alarm {
  readonly #clock: Clock;
  readonly #fire: () => void;
  #timer: AbortController | undefined;

  constructor(clock: Clock, fire: () => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  get armed(): boolean {
    return this.#timer !== undefined;
  }

  arm(ms: number): void {
    this.disarm();
    const timer = new AbortController();
    this.#timer = timer;
    this.#clock.sleep(ms, timer.signal).then(
      () => {
        if (this.#timer !== timer) return;
        this.#timer = undefined;
        this.#fire();
      },
      () => {
        // Disarmed: whoever disarmed re-plans.
      },
    );
  }

  disarm(): void {
    const timer = this.#timer;
    if (timer === undefined) return;
    this.#timer = undefined;
    timer.abort();
  }
}
