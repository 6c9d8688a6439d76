/**
 * The concurrency cap: at most `size` tasks hold a slot, the rest wait in arrival order. A task
 * that finds a slot free starts at once, without a promise of its own.
 *
 * In place of p-limit: on the classic endpoint every conversion is a request that takes a slot,
 * and p-limit's three promises and bound function per task cost 7% of convey's CPU there
 * (200,000 requests, alternating runs; README, "Benchmarks"). `stop()` is what the engine needs
 * when a run is told to stop: every waiting task is turned away and never starts.
 */
export class Slots {
  readonly size: number;
  #active = 0;
  #stopped = false;
  /** Waiting tasks' resolvers; `#head` is the next to go (a queue without shift()'s copying). */
  #waiting: Array<((granted: boolean) => void) | undefined> = [];
  #head = 0;
  /** Gives a finished task's slot back; bound once, not a closure per task. */
  readonly #release = (): void => {
    const next = this.#next();
    // The slot passes straight to the next task: #active stays the same.
    if (next) next(true);
    else this.#active--;
  };

  constructor(size: number) {
    this.size = size;
  }

  /** Tasks holding a slot now. */
  get active(): number {
    return this.#active;
  }

  /**
   * Runs `task(arg)` in a slot and gives the slot back when its promise settles. Resolves with
   * `stopped` instead, without running it, if `stop()` is called first. `task` must not throw
   * synchronously.
   */
  run<A, R, S>(task: (arg: A) => Promise<R>, arg: A, stopped: S): Promise<R | S> {
    if (this.#stopped) return Promise.resolve(stopped);
    if (this.#active < this.size) {
      this.#active++;
      return this.#hold(task, arg);
    }
    return new Promise<boolean>((resolve) => this.#waiting.push(resolve)).then((granted): R | S | Promise<R> => (granted ? this.#hold(task, arg) : stopped));
  }

  /** Turns away every waiting task (they resolve `stopped`) and every later one; running tasks finish. */
  stop(): void {
    this.#stopped = true;
    while (this.#head < this.#waiting.length) this.#next()!(false);
    this.#waiting = [];
    this.#head = 0;
  }

  #hold<A, R>(task: (arg: A) => Promise<R>, arg: A): Promise<R> {
    const running = task(arg);
    running.then(this.#release, this.#release);
    return running;
  }


  #next(): ((granted: boolean) => void) | undefined {
    if (this.#head >= this.#waiting.length) return undefined;
    const next = this.#waiting[this.#head];
    this.#waiting[this.#head++] = undefined;
    // Drop the consumed front now and then, so a long run does not keep a growing array.
    if (this.#head >= 1024 && this.#head * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    return next;
  }
}
