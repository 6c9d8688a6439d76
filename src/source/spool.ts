import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../time/clock.ts';
import type { SourceRow } from './driver.ts';

export interface SpoolOptions {
  clock: Clock;
  /**
   * How long the query may wait for the sender (Infinity: as long as it takes). Until then chunks are read as the sender takes
   * them (the engine's own flow control; nothing touches the disk). After it, the rest of the
   * window is read at full speed and what the sender has not taken yet goes to a file, so the
   * source's snapshot, transaction or warehouse session closes in about the time a full-speed
   * read takes rather than the time sending takes (a rate limit of 100/s makes 1M rows three hours).
   */
  spoolAfterMs: number;
  /** Chunks kept in memory ahead of the sender. */
  aheadChunks: number;
  /** Folder for the spool file (default: the OS temporary folder). */
  dir?: string;
}

/** What the spool did, for the run's log and the progress line. */
export interface SpoolStats {
  /** Rows the source handed over so far. */
  rowsRead: number;
  /** True once the source's query has returned its last row and is closed. */
  readComplete: boolean;
  rowsSpooled: number;
  bytesSpooled: number;
  /** Monotonic ms the query was open (until it ended). */
  queryOpenMs: number;
}

const END = Symbol('end');

/**
 * Puts a spool between a source's stream and the sender. Rows come out in the order they went
 * in. The spool file (compact JSON, one chunk per write) is deleted when reading ends, however it
 * ends; a process killed with -9 leaves a `convey-spool-*` folder in the temporary folder.
 */
export async function* spool(input: AsyncIterable<SourceRow[]>, options: SpoolOptions, stats: SpoolStats = newSpoolStats()): AsyncGenerator<SourceRow[]> {
  const buffer = new SpoolBuffer(options, stats);
  const filling = buffer.fill(input);
  try {
    for (;;) {
      const chunk = await buffer.take();
      if (chunk === END) return;
      yield chunk;
    }
  } finally {
    buffer.stop();
    await filling;
    await buffer.discard();
  }
}

export const newSpoolStats = (): SpoolStats => ({ rowsRead: 0, readComplete: false, rowsSpooled: 0, bytesSpooled: 0, queryOpenMs: 0 });

class SpoolBuffer {
  readonly #options: SpoolOptions;
  readonly #stats: SpoolStats;
  readonly #memory: SourceRow[][] = [];
  /** Chunks written to the file and not yet taken: where each starts and how long it is. */
  readonly #disk: Array<{ at: number; bytes: number }> = [];
  #file: { dir: string; handle: FileHandle; end: number } | undefined;
  #ended = false;
  #error: unknown;
  #stopped = false;
  /** Wakes the reader (a chunk or the end arrived) or the writer (room, or stop). */
  #wakeTaker: (() => void) | undefined;
  #wakeFiller: (() => void) | undefined;

  constructor(options: SpoolOptions, stats: SpoolStats) {
    this.#options = options;
    this.#stats = stats;
  }

  async fill(input: AsyncIterable<SourceRow[]>): Promise<void> {
    const { clock, spoolAfterMs, aheadChunks } = this.#options;
    const openedAt = clock.monotonic();
    const deadline = openedAt + spoolAfterMs;
    this.#stats.readComplete = false;
    const iterator = input[Symbol.asyncIterator]();
    try {
      for (;;) {
        // Flow control until the deadline: wait for the sender to take a chunk.
        while (!this.#stopped && this.#memory.length >= aheadChunks && !this.#disk.length && clock.monotonic() < deadline) {
          await this.#roomOrDeadline(deadline);
        }
        if (this.#stopped) return;
        const next = await iterator.next();
        if (next.done) break;
        const chunk = next.value;
        this.#stats.rowsRead += chunk.length;
        // Once a chunk is on disk, later ones follow it there, or they would overtake it.
        if (this.#disk.length || this.#memory.length >= aheadChunks) await this.#write(chunk);
        else this.#memory.push(chunk);
        this.#wakeTaker?.();
      }
      this.#stats.readComplete = true;
    } catch (error) {
      this.#error = error;
    } finally {
      this.#stats.queryOpenMs = clock.monotonic() - openedAt;
      // Stopped early (the run was stopped, or sending failed): the engine closes the statement.
      if (!this.#ended) await iterator.return?.().catch(() => undefined);
      this.#ended = true;
      this.#wakeTaker?.();
    }
  }

  /** The next chunk in order, or END; throws what the source threw, after the rows before it. */
  async take(): Promise<SourceRow[] | typeof END> {
    for (;;) {
      const chunk = this.#memory.shift() ?? (this.#disk.length ? await this.#read() : undefined);
      if (chunk) {
        this.#wakeFiller?.();
        return chunk;
      }
      if (this.#ended) {
        if (this.#error !== undefined) throw this.#error;
        return END;
      }
      await new Promise<void>((resolve) => (this.#wakeTaker = resolve));
      this.#wakeTaker = undefined;
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#wakeFiller?.();
  }

  async discard(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    if (!file) return;
    await file.handle.close().catch(() => undefined);
    await rm(file.dir, { recursive: true, force: true });
  }

  async #roomOrDeadline(deadline: number): Promise<void> {
    if (deadline === Infinity) {
      await new Promise<void>((resolve) => (this.#wakeFiller = resolve));
      this.#wakeFiller = undefined;
      return;
    }
    const timer = new AbortController();
    await Promise.race([
      new Promise<void>((resolve) => (this.#wakeFiller = resolve)),
      this.#options.clock.sleep(deadline - this.#options.clock.monotonic(), timer.signal).catch(() => undefined),
    ]);
    this.#wakeFiller = undefined;
    timer.abort();
  }

  async #write(chunk: SourceRow[]): Promise<void> {
    if (!this.#file) {
      const dir = await mkdtemp(join(this.#options.dir ?? tmpdir(), 'convey-spool-'));
      this.#file = { dir, handle: await open(join(dir, 'window.json'), 'w+'), end: 0 };
    }
    const bytes = Buffer.from(JSON.stringify(chunk));
    const file = this.#file;
    await file.handle.write(bytes, 0, bytes.length, file.end);
    this.#disk.push({ at: file.end, bytes: bytes.length });
    file.end += bytes.length;
    this.#stats.rowsSpooled += chunk.length;
    this.#stats.bytesSpooled += bytes.length;
  }

  async #read(): Promise<SourceRow[]> {
    const { at, bytes } = this.#disk.shift()!;
    const buffer = Buffer.allocUnsafe(bytes);
    await this.#file!.handle.read(buffer, 0, bytes, at);
    return JSON.parse(buffer.toString('utf8')) as SourceRow[];
  }
}
