/**
 * How many batches to keep in flight, by Little's law: the fastest a batch has gone from claim to
 * record, over the time the reader takes to produce one, plus one. Against a local receiver a
 * batch of 500 takes a few ms end to end and the reader ~2.5 ms to produce the next, so 3–5 are
 * enough; over the internet (a request of 500 conversions taking 100–300 ms) the limit rises to
 * `max`. Every batch in flight holds its conversions in memory, and young ones: with 17 batches of
 * 500 in flight (the Event API at concurrency 16, as before this limit) V8's scavenger copied
 * about 8 MB of them at each of its ~130 collections in a 300,000-conversion run: 2.6 s of pauses,
 * 4.95 s of convey's CPU, 178 MB peak RSS; with this limit 1.0–1.5 s, 3.9–4.2 s and 161–169 MB
 * (the same build otherwise, three runs each). The fastest batch, not the average: when
 * PostgreSQL or the receiver is the bottleneck, more batches in flight only queue, and an average
 * that grew with the queue would grow the limit with it. Until a batch has been recorded, 2.
 */
export class InFlightLimit {
  #fastestBatch = Infinity;
  #readMs = 0;
  #reads = 0;
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  /** The reader took `ms` to produce a batch (time it was not held back). */
  batchRead(ms: number): void {
    this.#reads++;
    // A running mean that forgets: the first eight reads alike, then each new one weighs an eighth.
    this.#readMs += (ms - this.#readMs) / Math.min(this.#reads, 8);
  }

  /** A batch took `ms` from its claim to its record. */
  batchTook(ms: number): void {
    if (ms < this.#fastestBatch) this.#fastestBatch = ms;
  }

  get value(): number {
    if (this.#fastestBatch === Infinity) return Math.min(2, this.#max);
    // A clock that does not move (the tests' fake clock) says nothing: as many as allowed.
    if (!(this.#readMs > 0)) return this.#max;
    return Math.max(2, Math.min(this.#max, Math.ceil(this.#fastestBatch / this.#readMs) + 1));
  }
}
