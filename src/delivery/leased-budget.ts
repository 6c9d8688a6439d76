import type { Logger } from '../log.ts';
import type { Clock } from '../time/clock.ts';
import { Alarm } from './alarm.ts';
import type { PauseGate } from './pause-gate.ts';
import type { RateBudget } from './rate-budget.ts';

/**
 * A destination's rate budget shared by every runner sending to it, wherever it runs. The schedule
 * lives in the state store (state/sql/rate-budgets.ts): one row per destination whose `tat` is the
 * time, on the database's clock, at which the next free slot starts (GCRA). A runner reserves a
 * lease of n consecutive slots in one statement (`tat = greatest(tat, now) + n × interval`) and
 * paces its requests into them here, so the row is touched once per lease, not per request.
 * Measured while researching this (4 processes, 1,000/s, 8 s): 99.9% of the limit with at most
 * 1,012 requests in any sliding second. A fixed 1-second window let 1,980 through; an even split
 * between processes used 48% of the limit once three of four went idle.
 *
 * What keeps every sliding second at or under the limit on a loaded machine:
 * - **A slot is used on time or not at all.** A request leaves at its slot's time, or up to
 *   FORGIVE_MS after it; a runner that falls behind (its event loop busy, its machine loaded)
 *   drops the slots it missed instead of sending them late, bunched with the next runner's. So
 *   the requests of any window W belong to the slots of a window of W + FORGIVE_MS.
 * - **Leases sized by demand.** A lease holds twice as many slots as requests are waiting (at
 *   most MAX_LEASE_MS of the budget): a runner with little to send does not sit on slots the
 *   others could use.
 * - **Headroom for what happens after the slot.** Where a lease starts is known to the runner
 *   only as "so long after the database's now", and the database's now falls somewhere inside the
 *   reservation's round trip; after the slot, the request crosses this process's event loop, the
 *   network and the endpoint's own event loop before it is counted. On a shared 2-core machine
 *   each of these varied by tens of milliseconds. The shared schedule runs at HEADROOM below
 *   `perSecond`: with the FORGIVE_MS a slot may be late, that leaves 40 ms of such jitter at any
 *   rate before a second goes over 102% (970/s × (1 + 0.010 + 0.040) < 1,020). Measured
 *   here with 4 runners at 200/s on the shared 2-core machine (load average 14): busiest seconds
 *   of 194–198 at the receiver, and one of 208 for a single runner at 2% headroom.
 *
 * A Retry-After seen by one runner pauses the row and is broadcast (NOTIFY) to every runner's
 * pause gate; an AIMD cut seen by one lowers the rate of every later lease (see the SQL).
 */

/**
 * A slot more than this late is dropped, not used. Every millisecond allowed here is a millisecond
 * of the jitter budget below; 5 ms (the token bucket's own slack) lost 18% of the slots of one
 * runner at 50/s on the shared machine (load average 15), whose timers often fired later than that.
 */
export const FORGIVE_MS = 10;

/** The most budget one lease holds: 100 ms of the destination's rate. */
const MAX_LEASE_MS = 100;

/** The shared schedule runs at 97% of `perSecond` (see above). */
export const HEADROOM = 0.03;

/** Wait before asking again after a reservation failed (the lock connection's loss ends the run). */
const RETRY_MS = 100;

/** The shared schedule, as the budget needs it (implemented on the state store). */
export interface BudgetSchedule {
  /** Reserves `n` consecutive slots: the first `waitMs` after the database's now, `slotMs` apart. */
  reserve(n: number): Promise<{ waitMs: number; slotMs: number }>;
  /** The endpoint asked for a pause of `ms`: every runner waits it out. */
  pause(ms: number): Promise<void>;
  /** A 429 lowered this runner's rate: lower the shared one (once a second across runners). */
  throttled(): Promise<void>;
  /** Pauses asked by any runner (this one included). */
  onPause(listener: (ms: number) => void): void;
}

interface Waiter {
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class LeasedBudget implements RateBudget {
  readonly #clock: Clock;
  readonly #schedule: BudgetSchedule;
  readonly #logger: Logger;
  readonly #maxLease: number;
  #rate: number;
  /** Start times (monotonic ms) of the slots this runner holds, ascending, from `#head`. */
  #slots: number[] = [];
  #head = 0;
  readonly #queue: Waiter[] = [];
  #reserving = false;
  #failing = false;
  readonly #alarm: Alarm;
  readonly #gate: PauseGate | undefined;

  constructor(options: { clock: Clock; schedule: BudgetSchedule; logger: Logger; perSecond: number; gate?: PauseGate }) {
    this.#gate = options.gate;
    this.#clock = options.clock;
    this.#schedule = options.schedule;
    this.#logger = options.logger;
    this.#rate = options.perSecond;
    this.#maxLease = Math.max(1, Math.floor((options.perSecond * MAX_LEASE_MS) / 1000));
    this.#alarm = new Alarm(options.clock, () => this.#pump());
    // Another runner was told to wait (or this one, echoed back): so is this engine.
    options.schedule.onPause((ms) => {
      this.#dropSlots();
      this.#gate?.pauseFor(ms);
      this.#pump();
    });
  }

  get rate(): number {
    return this.#rate;
  }

  tryTake(): boolean {
    if (this.#queue.length > 0) return false;
    if (this.#gate?.active && this.#gate.remaining() > 0) return false;
    const now = this.#clock.monotonic();
    this.#skipMissed(now);
    if (this.#head < this.#slots.length && this.#slots[this.#head]! <= now) {
      this.#head++;
      return true;
    }
    return false;
  }

  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryTake()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          const at = this.#queue.indexOf(waiter);
          if (at >= 0) this.#queue.splice(at, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
      this.#pump();
    });
  }

  setRate(_ratePerSecond: number, reason?: 'throttled' | 'recovering'): void {
    // Recovery is the schedule's own (time since the last cut); only a cut is news to share.
    if (reason !== 'throttled') return;
    this.#schedule.throttled().catch((error: unknown) => this.#logger.warn('could not lower the shared rate', { error: String(error) }));
  }

  paused(ms: number): void {
    this.#dropSlots();
    this.#schedule.pause(ms).catch((error: unknown) => this.#logger.warn('could not tell the other runners to pause', { error: String(error) }));
  }

  #skipMissed(now: number): void {
    while (this.#head < this.#slots.length && this.#slots[this.#head]! < now - FORGIVE_MS) this.#head++;
    if (this.#head > 64 && this.#head * 2 > this.#slots.length) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Slots reserved before a pause fall inside it: none of them may be used. */
  #dropSlots(): void {
    this.#slots = [];
    this.#head = 0;
  }

  /** Grants what is due, reserves what is missing, and arms one wake-up for the next slot. */
  #pump(): void {
    this.#alarm.disarm();
    const paused = this.#gate?.active ? this.#gate.remaining() : 0;
    if (paused > 0 && this.#queue.length > 0) {
      // Slots that fall inside the pause are dropped when it ends (too late by then).
      this.#alarm.arm(paused);
      return;
    }
    const now = this.#clock.monotonic();
    this.#skipMissed(now);
    const queue = this.#queue;
    while (queue.length > 0 && this.#head < this.#slots.length && this.#slots[this.#head]! <= now) {
      this.#head++;
      const waiter = queue.shift()!;
      if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.resolve();
    }
    if (queue.length === 0) return;
    const held = this.#slots.length - this.#head;
    // Fewer slots than waiters: reserve for twice the waiters, since the requests that leave come
    // back for more. One slot at a time would touch the row once per request (measured on the
    // fake clock: 204 reservations for 200 grants); this makes it once per `queue.length`.
    // Never more than about two leases ahead: the slots held are the other runners' wait.
    if (held < Math.min(queue.length, this.#maxLease) && !this.#reserving) void this.#reserve(Math.min(this.#maxLease, 2 * queue.length));
    if (held > 0) this.#alarm.arm(this.#slots[this.#head]! - now);
  }

  async #reserve(n: number): Promise<void> {
    this.#reserving = true;
    try {
      const lease = await this.#schedule.reserve(n);
      // The database's now fell somewhere inside the round trip; taking it as the moment the
      // answer arrived places the lease as late as it can be, never early.
      // Kept in order, and never closer than one slot to the lease before: the two mappings' own
      // errors must not put this runner's slots on top of each other.
      const last = this.#slots.length > this.#head ? this.#slots[this.#slots.length - 1]! + lease.slotMs : -Infinity;
      const start = Math.max(this.#clock.monotonic() + lease.waitMs, last);
      this.#skipMissed(this.#clock.monotonic());
      for (let i = 0; i < n; i++) this.#slots.push(start + i * lease.slotMs);
      this.#rate = 1000 / lease.slotMs;
      this.#failing = false;
    } catch (error) {
      // Once per streak: a store that is gone ends the run through the lock connection anyway.
      if (!this.#failing) this.#logger.warn('could not reserve from the shared rate budget; trying again', { error: String(error) });
      this.#failing = true;
      await this.#clock.sleep(RETRY_MS).catch(() => undefined);
    } finally {
      this.#reserving = false;
    }
    this.#pump();
  }
}
