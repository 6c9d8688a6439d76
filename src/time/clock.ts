import { setTimeout as delay } from 'node:timers/promises';

/**
 * The one way convey reads time and waits. Passed in everywhere, so tests drive the token bucket,
 * backoff and window arithmetic with a fake clock instead of sleeping.
 */
export interface Clock {
  /** Wall-clock time in epoch milliseconds (used for windows and records). */
  now(): number;
  /** Monotonic milliseconds (used for rates and timeouts; never goes backwards). */
  monotonic(): number;
  /** Resolves after `ms` milliseconds, or rejects with the signal's reason when it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  sleep: async (ms, signal) => {
    if (ms <= 0) return;
    await delay(ms, undefined, signal ? { signal } : undefined);
  },
};

/**
 * A clock that only moves when told to. `sleep` resolves when `advance` passes its deadline, so a
 * test can step through minutes of backoff in microseconds.
 */
export class FakeClock implements Clock {
  private wall: number;
  private mono = 0;
  private sleepers: Array<{ at: number; resolve: () => void; reject: (e: unknown) => void }> = [];

  constructor(startEpochMs = Date.UTC(2026, 0, 1)) {
    this.wall = startEpochMs;
  }

  now(): number {
    return this.wall;
  }

  monotonic(): number {
    return this.mono;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const sleeper = { at: this.mono + ms, resolve, reject };
      this.sleepers.push(sleeper);
      signal?.addEventListener(
        'abort',
        () => {
          this.sleepers = this.sleepers.filter((s) => s !== sleeper);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }

  /** Number of callers currently waiting in `sleep`. */
  get waiting(): number {
    return this.sleepers.length;
  }

  /** Monotonic ms at which the earliest sleeper wakes, or undefined when nobody sleeps. */
  nextWakeUp(): number | undefined {
    let next: number | undefined;
    for (const sleeper of this.sleepers) if (next === undefined || sleeper.at < next) next = sleeper.at;
    return next;
  }

  /** Move time forward, waking sleepers in deadline order. */
  async advance(ms: number): Promise<void> {
    const target = this.mono + ms;
    for (;;) {
      this.sleepers.sort((a, b) => a.at - b.at);
      const next = this.sleepers[0];
      if (!next || next.at > target) break;
      this.sleepers.shift();
      this.wall += next.at - this.mono;
      this.mono = next.at;
      next.resolve();
      // Let the woken task run (and maybe sleep again) before waking the next one.
      await new Promise((r) => setImmediate(r));
    }
    this.wall += target - this.mono;
    this.mono = target;
  }
}
