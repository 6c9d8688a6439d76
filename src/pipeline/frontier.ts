import type { Instant } from '../time/instant.ts';

/**
 * Where the watermark may move. Batches are read in cursor order but finish in any order; the
 * watermark may only pass a batch once it and every batch before it are recorded. Each batch's
 * "high cursor" is the cursor of the last row it covers. Completions are applied one at a time by
 * the caller (inside its ledger transaction), so the value returned is exactly what is committed.
 */
export class Frontier {
  private issued = 0;
  private lowest = 0;
  private readonly finished = new Map<number, Instant | undefined>();
  private position: Instant | undefined;

  /** Numbers the next batch, in read order. */
  issue(): number {
    return this.issued++;
  }

  /**
   * The cursor the watermark may move to once the batches `recording` (each its seq and high
   * cursor) are recorded, or undefined if it would not move. A batch without rows in the window
   * (undefined) moves nothing.
   */
  peek(recording: ReadonlyArray<readonly [number, Instant | undefined]>): Instant | undefined {
    const pending = new Map(recording);
    let low = this.lowest;
    let position = this.position;
    while (pending.has(low) || this.finished.has(low)) {
      position = (pending.has(low) ? pending.get(low) : this.finished.get(low)) ?? position;
      low++;
    }
    return position === this.position ? undefined : position;
  }

  /** Records `seq` as done; call after its transaction committed. */
  complete(seq: number, highCursor: Instant | undefined): void {
    this.finished.set(seq, highCursor);
    while (this.finished.has(this.lowest)) {
      this.position = this.finished.get(this.lowest) ?? this.position;
      this.finished.delete(this.lowest);
      this.lowest++;
    }
  }

  /** True when every issued batch is done. */
  get settled(): boolean {
    return this.lowest === this.issued;
  }
}
