import type { SourceRow } from '../source/driver.ts';
import type { Source } from '../source/open.ts';

/**
 * One read of the source for two readers: a statement asked by one is run once, and what it
 * returns is kept for the other's identical statement. `plan --compare` reads a window once when
 * only the settings changed, and gives the same rows to both sides' checks and encoders. The
 * readers are pulled in step (compare.ts), so at most a batch or so of chunks waits here.
 */
export function teeSource(source: Source): [Source, Source] {
  const described = new Map<string, Array<Promise<string[]>>>();
  const streams = new Map<string, SharedStream>();
  const reader = (self: 0 | 1): Source => ({
    ...source,
    columns(sql, params) {
      const key = JSON.stringify([self, sql, params]);
      const kept = described.get(key)?.shift();
      if (kept) return kept;
      const result = source.columns(sql, params);
      // The other reader may stop before asking (a broken mapping on its side): no unhandled rejection.
      result.catch(() => undefined);
      const other = JSON.stringify([self === 0 ? 1 : 0, sql, params]);
      described.set(other, [...(described.get(other) ?? []), result]);
      return result;
    },
    async *stream(sql, params, options) {
      const key = JSON.stringify([sql, params]);
      let shared = streams.get(key);
      if (!shared || shared.taken[self]) {
        shared = { chunks: [[], []], taken: [false, false], done: false, source: source.stream(sql, params, options)[Symbol.asyncIterator]() };
        streams.set(key, shared);
      }
      shared.taken[self] = true;
      const mine = shared.chunks[self];
      const theirs = shared.chunks[self === 0 ? 1 : 0];
      try {
        for (;;) {
          const kept = mine.shift();
          if (kept) {
            yield kept;
            continue;
          }
          if (shared.failed) throw shared.failed.error;
          if (shared.done) return;
          let next: IteratorResult<SourceRow[]>;
          try {
            next = await shared.source.next();
          } catch (error) {
            // The other reader must fail too, not end quietly with fewer rows.
            shared.failed = { error };
            throw error;
          }
          if (next.done) {
            shared.done = true;
            return;
          }
          theirs.push(next.value);
          yield next.value;
        }
      } finally {
        if (shared.taken[0] && shared.taken[1] && streams.get(key) === shared) streams.delete(key);
      }
    },
    close: async () => undefined,
  });
  return [reader(0), reader(1)];
}

interface SharedStream {
  /** Chunks read but not yet given to each reader. */
  chunks: [SourceRow[][], SourceRow[][]];
  taken: [boolean, boolean];
  done: boolean;
  failed?: { error: unknown };
  source: AsyncIterator<SourceRow[]>;
}
