import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/** What a spilled record needs: a sort key, and its place in reading order to break ties. */
export interface Spillable {
  key: string;
  seq: number;
}

/**
 * Records sorted by key on disk, so that comparing two sides of a window holds a few thousand
 * records in memory however large the window is: each side is cut into sorted runs of
 * `runSize` records (one JSON line each), and read back merged. Keys compare as JavaScript strings
 * (UTF-16 code units), never in a database's collation, so both sides order alike on any engine.
 */
export class SortedSpill<T extends Spillable> {
  private buffer: T[] = [];
  private runs: string[] = [];
  private count = 0;

  constructor(
    private readonly dir: string,
    private readonly name: string,
    /**
     * Records held before a sorted run is written: the heap a side takes at most. 10,000 records
     * of a compare are a few MB; the 1M-row compare of bench/compare-memory.mjs writes 100 runs a
     * side.
     */
    private readonly runSize = 10_000,
  ) {}

  get size(): number {
    return this.count;
  }

  async add(record: T): Promise<void> {
    this.buffer.push(record);
    this.count++;
    if (this.buffer.length >= this.runSize) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.buffer.length) return;
    this.buffer.sort(compareRecords);
    const path = join(this.dir, `${this.name}-${this.runs.length}.ndjson`);
    await writeLines(path, this.buffer);
    this.runs.push(path);
    this.buffer = [];
  }

  /** Every record added, in (key, seq) order. Call once, after the last add. */
  async *sorted(): AsyncGenerator<T> {
    if (!this.runs.length) {
      // Small enough to have stayed in memory.
      yield* this.buffer.sort(compareRecords);
      return;
    }
    await this.flush();
    // More runs than open files a merge should hold: merge them in groups first.
    let runs = this.runs;
    let pass = 0;
    while (runs.length > MAX_FAN_IN) {
      const merged: string[] = [];
      for (let i = 0; i < runs.length; i += MAX_FAN_IN) {
        const path = join(this.dir, `${this.name}-p${pass}-${merged.length}.ndjson`);
        await writeLines(path, mergeRuns<T>(runs.slice(i, i + MAX_FAN_IN)));
        await Promise.all(runs.slice(i, i + MAX_FAN_IN).map((run) => rm(run)));
        merged.push(path);
      }
      runs = merged;
      pass++;
    }
    yield* mergeRuns<T>(runs);
  }
}

/**
 * Runs merged at once; more are merged in groups first. Each open run holds a READ_CHUNK buffer and
 * the lines cut from it: with 128, the 1M-row compare (100 runs a side, merged side by side) held
 * 18 MB more than the 100k one; with 32 the merge holds the same whatever the window, for one
 * more write and read of each side past 320,000 rows.
 */
const MAX_FAN_IN = 32;

/**
 * A run (or a merge pass's output) written WRITE_SLICE records at a time: one string of a whole
 * run (10,000 records, about 3.5 MB, and as much again in the lines it was joined from) on each
 * side at once was up to 25 MB of a compare's peak RSS, which varied with whether the two sides'
 * flushes met: 117–142 MB at 100,000 rows and 124–150 at 1,000,000, now 109–113 and 116–118.
 */
async function writeLines(path: string, records: Iterable<unknown> | AsyncIterable<unknown>): Promise<void> {
  const file = await open(path, 'w');
  try {
    let text = '';
    let n = 0;
    for await (const record of records) {
      text += JSON.stringify(record) + '\n';
      if (++n === WRITE_SLICE) {
        await file.write(text);
        text = '';
        n = 0;
      }
    }
    if (text) await file.write(text);
  } finally {
    await file.close();
  }
}

const WRITE_SLICE = 500;

export function compareRecords(a: Spillable, b: Spillable): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq;
}

/**
 * A run's records, read a chunk at a time when the merge asks for the next one. Not readline: its
 * async iterator reads ahead without bound, and with 100 runs a side read at once the 1M-row
 * compare held 307 MB instead of 156 MB.
 */
async function* readRun<T>(path: string): AsyncGenerator<T> {
  const file = await open(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(READ_CHUNK);
    const decoder = new StringDecoder('utf8');
    let rest = '';
    for (;;) {
      const { bytesRead } = await file.read(chunk, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      const text = rest + decoder.write(chunk.subarray(0, bytesRead));
      const lines = text.split('\n');
      rest = lines.pop()!;
      for (const line of lines) if (line) yield JSON.parse(line) as T;
    }
    rest += decoder.end();
    if (rest) yield JSON.parse(rest) as T;
  } finally {
    await file.close();
  }
}

/**
 * Bytes read from a run at a time. The merge holds a chunk per run and the lines cut from it
 * (about three times its size): 64 KB chunks made the 1M-row compare 24 MB larger than the 100k one.
 */
const READ_CHUNK = 16 * 1024;

/** A k-way merge of sorted runs with a binary heap of each run's next record. */
async function* mergeRuns<T extends Spillable>(paths: string[]): AsyncGenerator<T> {
  const heap: Array<{ record: T; run: AsyncGenerator<T> }> = [];
  const less = (i: number, j: number): boolean => compareRecords(heap[i]!.record, heap[j]!.record) < 0;
  const swap = (i: number, j: number): void => {
    [heap[i], heap[j]] = [heap[j]!, heap[i]!];
  };
  const up = (i: number): void => {
    while (i > 0 && less(i, (i - 1) >> 1)) {
      swap(i, (i - 1) >> 1);
      i = (i - 1) >> 1;
    }
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(l, m)) m = l;
      if (r < heap.length && less(r, m)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  for (const path of paths) {
    const run = readRun<T>(path);
    const first = await run.next();
    if (!first.done) {
      heap.push({ record: first.value, run });
      up(heap.length - 1);
    }
  }
  while (heap.length) {
    const top = heap[0]!;
    yield top.record;
    const next = await top.run.next();
    if (next.done) {
      const last = heap.pop()!;
      if (heap.length) {
        heap[0] = last;
        down(0);
      }
    } else {
      top.record = next.value;
      down(0);
    }
  }
}

/** A private temporary folder for `fn`'s spills, removed afterwards whatever happens. */
export async function withSpillDir<R>(fn: (dir: string) => Promise<R>): Promise<R> {
  const dir = await mkdtemp(join(tmpdir(), 'convey-compare-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
