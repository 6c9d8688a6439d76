import type { Clock } from '../time/clock.ts';
import { parseInstant, type Instant } from '../time/instant.ts';
import type { Window } from '../time/window.ts';
import type { Param, SourceRow } from './driver.ts';
import { mappingError, windowParams, wrapped, type DescribedMapping } from './mapping.ts';
import { SourceError, type Source } from './open.ts';
import { spool, type SpoolStats } from './spool.ts';

export interface ReadOptions {
  /** Rows per round trip to the engine (the job's pageSize). */
  fetchRows: number;
  clock: Clock;
  signal?: AbortSignal;
  /** Replay: only these conversion ids. */
  conversionIds?: readonly string[];
  /** Filled in as the read goes (rows read, whether the query has ended, what was spooled). */
  stats?: SpoolStats;
  /** Told when a dropped connection is resumed. */
  onResume?: (error: unknown, after: { cursor: Instant; id: string } | undefined) => void;
}

/** Resumes after a dropped connection, at most this many times per window (a failover, a proxy restart). */
const MAX_RESUMES = 3;
/** Chunks read ahead of the sender before the query waits for it (or, after spoolAfter, spools). */
const AHEAD_CHUNKS = 2;

/**
 * Reads a window with ONE query, in (cursor, conversion_id) order, streamed by the engine a chunk
 * at a time: the job's SELECT is evaluated once per window, however large. (It used to run once
 * per keyset page: on a table or join without an index on the cursor every page scanned the whole
 * window again, and a warehouse billed a scan per page.) Rows whose conversion_id or cursor is
 * NULL come in the same query, to be reported as rejects. The cursor and occurred_at arrive as
 * UTC text with microseconds, rendered by the engine's dialect.
 *
 * A keyset condition is used only to resume after the connection dropped mid-read: the query runs
 * again from the last (cursor, conversion_id) handed over, skipping the rows of that key already
 * read, so rows that share a cursor value (even exact duplicates) are neither skipped nor repeated.
 */
export function readWindow(source: Source, mapping: DescribedMapping, window: Window, options: ReadOptions): AsyncGenerator<SourceRow[]> {
  // An engine inside convey holds nothing of anyone else's while its result waits: no spool file.
  const spoolAfterMs = source.capabilities.location === 'server' ? source.spoolAfterMs : Infinity;
  return spool(resumable(source, mapping, window, options), { clock: options.clock, spoolAfterMs, aheadChunks: AHEAD_CHUNKS }, options.stats);
}

interface Key {
  cursor: Instant;
  id: string;
  /** Rows with exactly this key already handed over. */
  seen: number;
}

async function* resumable(source: Source, mapping: DescribedMapping, window: Window, options: ReadOptions): AsyncGenerator<SourceRow[]> {
  let after: Key | undefined;
  for (let resumes = 0; ; resumes++) {
    let toSkip = after?.seen ?? 0;
    const params: Record<string, Param> = { ...windowParams(window) };
    if (after) {
      params.convey_after_cursor = { type: 'instant', value: after.cursor };
      params.convey_after_id = { type: 'key', value: after.id };
    }
    if (options.conversionIds) params.convey_ids = { type: 'text list', value: options.conversionIds };
    try {
      for await (const chunk of source.stream(readSql(source, mapping, { after: Boolean(after), ids: Boolean(options.conversionIds) }), params, {
        fetchRows: options.fetchRows,
        ...(options.signal ? { signal: options.signal } : {}),
      })) {
        let rows = chunk;
        if (toSkip) {
          let k = 0;
          while (k < toSkip && k < rows.length && sameKey(rows[k]!, mapping.cursor, after!)) k++;
          toSkip = k === rows.length ? toSkip - k : 0;
          rows = k ? rows.slice(k) : rows;
        }
        if (!rows.length) continue;
        after = lastKey(rows, mapping.cursor, after) ?? after;
        yield rows;
      }
      return;
    } catch (error) {
      if (options.signal?.aborted) return;
      if (!(error instanceof SourceError && error.kind === 'connection-lost') || resumes >= MAX_RESUMES) throw mappingError(mapping, error);
      options.onResume?.(error, after);
      // A moment for a failover or a restarting proxy; a source that stays down refuses the next
      // connection at once, which ends the read (exit 3).
      await options.clock.sleep(500 * (resumes + 1), options.signal).catch(() => undefined);
    }
  }
}

/**
 * The SELECT around the job's SQL. Each column is selected by name and renamed to lower case; the
 * cursor and occurred_at through the dialect's instantText, so every engine hands them over as
 * the same UTC text with microseconds, whatever the column's type and the driver's habits.
 */
export function readSql(source: Source, mapping: DescribedMapping, options: { after: boolean; ids: boolean }): string {
  const d = source.dialect;
  const column = (as: string): string => `convey_mapping.${d.quoteIdent(mapping.columns.find((c) => c.as === as)!.name)}`;
  const list = mapping.columns
    .map(({ name, as }) => {
      const ref = `convey_mapping.${d.quoteIdent(name)}`;
      return `${as === mapping.cursor || as === 'occurred_at' ? d.instantText(ref) : ref} as ${d.quoteIdent(as)}`;
    })
    .join(',\n  ');
  const c = column(mapping.cursor);
  const id = column('conversion_id');
  let where = `${c} >= :window_start and ${c} < :window_end`;
  // The expanded form, not (c, id) > (x, y): MariaDB, ClickHouse and DuckDB use an index or
  // pruning for it and not for the row comparison (../shared/SOURCES.md §3.0).
  if (options.after) where += `\n  and ${c} >= :convey_after_cursor and (${c} > :convey_after_cursor or ${d.idOrder(id)} >= ${d.idOrder(':convey_after_id')})`;
  if (options.ids) where += `\n  and ${d.textIn(id, ':convey_ids')}`;
  // A NULL cursor puts a row in no window: it is read (and reported) with every first read.
  else if (!options.after) where = `(${where}) or ${c} is null`;
  return wrapped(source, mapping, `where ${where}\norder by ${c}, ${d.idOrder(id)}`, list);
}

function sameKey(row: SourceRow, cursorColumn: string, key: { cursor: Instant; id: string }): boolean {
  return row.conversion_id !== null && String(row.conversion_id) === key.id && parseInstant(row[cursorColumn]) === key.cursor;
}

/** The last key in `rows`, and how many rows with exactly that key have been handed over. */
function lastKey(rows: SourceRow[], cursorColumn: string, previous: Key | undefined): Key | undefined {
  let i = rows.length - 1;
  // Rows without an id or a cursor cannot be resumed after (they are rejects).
  while (i >= 0 && (rows[i]!.conversion_id === null || rows[i]!.conversion_id === undefined || rows[i]![cursorColumn] === null)) i--;
  if (i < 0) return undefined;
  const cursor = parseInstant(rows[i]![cursorColumn]);
  if (!cursor) return undefined;
  const key: Key = { cursor, id: String(rows[i]!.conversion_id), seen: 0 };
  let trailing = 0;
  let j = i;
  for (; j >= 0; j--) {
    const row = rows[j]!;
    if (row.conversion_id === null || row.conversion_id === undefined) continue;
    if (!sameKey(row, cursorColumn, key)) break;
    trailing++;
  }
  key.seen = j < 0 && previous && previous.cursor === key.cursor && previous.id === key.id ? previous.seen + trailing : trailing;
  return key;
}
