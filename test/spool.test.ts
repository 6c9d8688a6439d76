import { existsSync, readdirSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { SourceRow } from '../src/source/driver.ts';
import { newSpoolStats, spool } from '../src/source/spool.ts';
import { FakeClock } from '../src/time/clock.ts';
import { waitFor } from './helpers/project.ts';

/**
 * The spool between a source's query and the sender (src/source/spool.ts), on the fake clock: the
 * query is paced by the sender until `spoolAfter`, then read to its end at once, the rest waiting
 * in a file that is gone when the read ends.
 */

const chunk = (i: number): SourceRow[] => [{ conversion_id: `c${i}`, n: i, nested: { b: 1, a: [i] } }];

/** A source of `n` chunks that records how many the spool has pulled. */
function source(n: number, failAfter?: number): { rows: AsyncIterable<SourceRow[]>; pulled(): number; closed(): boolean } {
  let pulled = 0;
  let closed = false;
  return {
    rows: (async function* () {
      try {
        for (let i = 0; i < n; i++) {
          if (i === failAfter) throw new Error('connection lost');
          pulled++;
          yield chunk(i);
        }
      } finally {
        closed = true;
      }
    })(),
    pulled: () => pulled,
    closed: () => closed,
  };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
const inDir = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith('convey-spool-'));

test('before spoolAfter the query waits for the sender; after it the rest is read at once into a file, handed over in order, and the file is deleted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'convey-spool-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock();
  const input = source(50);
  const stats = newSpoolStats();
  const out = spool(input.rows, { clock, spoolAfterMs: 30_000, aheadChunks: 2, dir }, stats);

  const first = await out.next();
  t.deepEqual(first.value, chunk(0));
  for (let i = 0; i < 5; i++) await settle();
  // One handed over, two ahead: the query waits for the sender, nothing on disk.
  t.is(input.pulled(), 3);
  t.deepEqual(inDir(dir), []);
  t.false(stats.readComplete);

  await clock.advance(30_000);
  // The file writes are real I/O: wait for them, without moving the clock or taking a chunk.
  await waitFor(() => (stats.readComplete ? true : undefined), 'the spool to read the window to its end');
  t.true(stats.readComplete, 'after spoolAfter the whole window is read without the sender');
  t.true(input.closed(), 'and the query is closed');
  t.is(input.pulled(), 50);
  t.is(stats.rowsSpooled, 47);
  t.true(stats.bytesSpooled > 0);
  t.is(inDir(dir).length, 1);

  const rest: SourceRow[][] = [];
  for await (const c of out) rest.push(c);
  t.deepEqual(rest, Array.from({ length: 49 }, (_, i) => chunk(i + 1)), 'every chunk, once, in order, nested values intact');
  t.deepEqual(inDir(dir), [], 'the spool file is deleted when the read ends');
});

test('a sender that keeps up never touches the disk', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'convey-spool-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stats = newSpoolStats();
  const got: SourceRow[][] = [];
  for await (const c of spool(source(20).rows, { clock: new FakeClock(), spoolAfterMs: 30_000, aheadChunks: 2, dir }, stats)) got.push(c);
  t.is(got.length, 20);
  t.is(stats.rowsSpooled, 0);
  t.deepEqual(inDir(dir), []);
});

test('the rows before a source error are handed over, then the error; a sender that stops early closes the query and deletes the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'convey-spool-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const got: SourceRow[][] = [];
  const failing = spool(source(10, 6).rows, { clock: new FakeClock(), spoolAfterMs: 0, aheadChunks: 1, dir });
  await t.throwsAsync(
    async () => {
      for await (const c of failing) got.push(c);
    },
    { message: 'connection lost' },
  );
  t.is(got.length, 6);
  t.deepEqual(inDir(dir), []);

  const input = source(100);
  const stats = newSpoolStats();
  for await (const c of spool(input.rows, { clock: new FakeClock(), spoolAfterMs: 0, aheadChunks: 1, dir }, stats)) {
    if (c[0]!.n === 2) break;
  }
  t.true(input.closed());
  t.deepEqual(inDir(dir), []);
  t.false(existsSync(join(dir, 'window.json')));
});
