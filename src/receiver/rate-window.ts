/**
 * The largest total weight (requests, or conversions) that arrived within any sliding window of
 * `windowMs`, from monotonic arrival times. This is what a rate limiter on the other side would
 * see, so the benchmarks can check convey never exceeds the rate it was configured for.
 *
 * A window is half-open: arrivals at t and t + windowMs never share one. Only the arrivals still
 * inside the current window are kept, in two parallel Float64Arrays used as a queue, so memory is
 * bounded by the peak rate, not by the number of arrivals (a million requests would otherwise be a
 * million objects for the garbage collector to walk).
 */
export class RateWindow {
  readonly windowMs: number;
  private times: Float64Array;
  private weights: Float64Array;
  private head = 0;
  private tail = 0;
  private sum = 0;
  private peak = 0;
  private last = Number.NEGATIVE_INFINITY;

  constructor(windowMs = 1000, initialCapacity = 1024) {
    if (!(windowMs > 0)) throw new RangeError(`windowMs must be positive, got ${windowMs}`);
    this.windowMs = windowMs;
    const capacity = Math.max(16, Math.floor(initialCapacity));
    this.times = new Float64Array(capacity);
    this.weights = new Float64Array(capacity);
  }

  /**
   * Record `weight` arrivals at monotonic time `at` (ms). Times are expected in order; an earlier
   * time (two callers stamping at once) is treated as the latest seen, which can only make the
   * window denser, never hide a burst.
   */
  add(at: number, weight = 1): void {
    const t = at < this.last ? this.last : at;
    this.last = t;
    const cutoff = t - this.windowMs;
    while (this.head < this.tail && this.times[this.head]! <= cutoff) {
      this.sum -= this.weights[this.head]!;
      this.head++;
    }
    if (this.tail === this.times.length) this.makeRoom();
    this.times[this.tail] = t;
    this.weights[this.tail] = weight;
    this.tail++;
    this.sum += weight;
    if (this.sum > this.peak) this.peak = this.sum;
  }

  /** The largest total weight seen inside one window so far. */
  get max(): number {
    return this.peak;
  }

  /** Arrivals currently held (those within one window of the latest); exposed for tests. */
  get held(): number {
    return this.tail - this.head;
  }

  reset(): void {
    this.head = 0;
    this.tail = 0;
    this.sum = 0;
    this.peak = 0;
    this.last = Number.NEGATIVE_INFINITY;
  }

  private makeRoom(): void {
    const live = this.tail - this.head;
    // Slide down only when at least half the array is dead, so each element is moved O(1) times
    // on average; otherwise the window really is that dense and the array has to grow.
    if (this.head >= this.times.length / 2) {
      this.times.copyWithin(0, this.head, this.tail);
      this.weights.copyWithin(0, this.head, this.tail);
    } else {
      const times = new Float64Array(this.times.length * 2);
      const weights = new Float64Array(this.weights.length * 2);
      times.set(this.times.subarray(this.head, this.tail));
      weights.set(this.weights.subarray(this.head, this.tail));
      this.times = times;
      this.weights = weights;
    }
    this.head = 0;
    this.tail = live;
  }
}
