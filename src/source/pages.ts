import { CANONICAL_COLUMNS, REQUIRED_COLUMNS } from '../check/conversion.ts';
import { didYouMean } from '../config/did-you-mean.ts';
import { ConveyError } from '../errors.ts';
import { parseInstant, type Instant } from '../time/instant.ts';
import { bindNamed, statementBody, UnknownParameterError } from './bind.ts';
import type { Source, SourceRow } from './connect.ts';
import type { Window } from '../time/window.ts';

export interface Mapping {
  /** The job's SQL, as written. */
  sql: string;
  /** For messages: jobs/<name>.sql */
  file: string;
  cursor: string;
}

/**
 * The job's SQL is wrapped, never edited: convey adds the window, the keyset condition, the order
 * and the page size around it, as bound parameters. A trailing semicolon would end the statement
 * inside the parentheses, so it is dropped, with any comment after it (bind.ts reads the SQL).
 */
function wrapped(mapping: Mapping, clauses: string, tail: string, select = '*'): string {
  const body = statementBody(mapping.sql);
  return `select ${select} from (\n${body}\n) as convey_mapping\n${clauses}\n${tail}`;
}

/** The cursor column, quoted: an identifier cannot be a bound parameter; the schema allows only [a-z0-9_]. */
const q = (column: string): string => `"${column}"`;

const inWindow = (cursor: string): string => `where ${q(cursor)} >= :window_start and ${q(cursor)} < :window_end`;

/** The parameters a job's SQL may use. */
export const MAPPING_PARAMETERS = ['window_start', 'window_end'] as const;

/**
 * The window's bounds and the keyset's cursor are bound as timestamptz, the type the README
 * promises: `:window_start - interval '1 day'` then works, and a `date` or `timestamp` cursor is
 * compared as the instant convey reads it as (a date is its midnight UTC, time/instant.ts) rather
 * than the bound being cut down to a date. A text cursor is refused by PostgreSQL instead of
 * being compared as text. Comparisons across date/timestamp/timestamptz can still use an index.
 */
const PARAMETER_TYPES = { window_start: 'timestamptz', window_end: 'timestamptz', convey_after_cursor: 'timestamptz' } as const;

/**
 * Runs the mapping for zero rows to learn its columns, and checks them before anything is read:
 * required columns, the cursor, and no unknown column (a misspelt `revenue` must not silently
 * send no revenue). Columns starting with `_` are ignored on purpose (for notes and debugging).
 */
export async function describeMapping(source: Source, mapping: Mapping, window: Window): Promise<Set<string>> {
  try {
    bindNamed(mapping.sql, { window_start: null, window_end: null });
  } catch (error) {
    if (!(error instanceof UnknownParameterError)) throw error;
    throw new ConveyError('MAPPING_INVALID', `${mapping.file}: it uses :${error.parameter}, which convey does not bind`, {
      hint: `The parameters are ${MAPPING_PARAMETERS.map((p) => `:${p}`).join(' and ')} (timestamptz). Write ::type casts with two colons.`,
    });
  }
  const { columns } = await source.query(wrapped(mapping, inWindow(mapping.cursor), 'limit 0'), {
    window_start: window.start,
    window_end: window.end,
  }, PARAMETER_TYPES).catch((error: unknown) => {
    throw mappingError(mapping, error);
  });
  const set = new Set(columns);
  const known = new Set<string>([...CANONICAL_COLUMNS, mapping.cursor]);
  const problems: string[] = [];
  for (const column of [...REQUIRED_COLUMNS, mapping.cursor]) {
    if (!set.has(column) && !problems.some((p) => p.includes(`"${column}"`))) {
      problems.push(`it returns no "${column}" column, which is required`);
    }
  }
  for (const column of columns) {
    if (known.has(column) || column.startsWith('_')) continue;
    const guess = didYouMean(column, [...known]);
    problems.push(
      `it returns "${column}", which is not a convey column${guess ? ` (did you mean "${guess}"?)` : ''}; rename it with AS, or prefix it with _ to keep it out of the request`,
    );
  }
  const duplicated = columns.filter((c, i) => columns.indexOf(c) !== i);
  for (const column of new Set(duplicated)) problems.push(`it returns "${column}" twice`);
  if (problems.length) {
    throw new ConveyError('MAPPING_INVALID', problems.map((p) => `${mapping.file}: ${p}`).join('\n'), {
      hint: `Canonical columns: ${CANONICAL_COLUMNS.join(', ')}. README "Writing a job" has the table.`,
      details: { problems },
    });
  }
  return set;
}

function mappingError(mapping: Mapping, error: unknown): ConveyError {
  if (error instanceof ConveyError && error.code === 'SOURCE_ERROR') {
    const cause = error.cause as { code?: string } | undefined;
    // 42xxx: syntax errors and unknown tables/columns: the mapping's fault, not the source's.
    if (cause?.code?.startsWith('42')) {
      return new ConveyError('MAPPING_INVALID', `${mapping.file}: ${error.message}`, {
        cause: error,
        hint: 'Run the SQL in your SQL client with :window_start and :window_end replaced by two timestamps.',
      });
    }
    return error;
  }
  return error as ConveyError;
}

/**
 * Reads the window in keyset pages over (cursor, conversion_id): each page is its own short
 * query, so no snapshot is held open for hours and memory holds one page. The condition is
 * `>=` on the last key seen, skipping the rows of that key already read, so rows that share a
 * cursor value across a page boundary (and even exact duplicates) are neither skipped nor repeated.
 * Rows without a conversion_id cannot be paged by key and are read by `incompleteRows`.
 */
export async function* readPages(
  source: Source,
  mapping: Mapping,
  window: Window,
  options: { pageSize: number; signal?: AbortSignal; conversionIds?: readonly string[] },
): AsyncGenerator<SourceRow[]> {
  let after: { cursor: Instant; id: string; seen: number } | undefined;
  const only = options.conversionIds ? ' and conversion_id::text = any(:convey_ids::text[])' : '';
  const c = q(mapping.cursor);
  for (;;) {
    if (options.signal?.aborted) return;
    const limit = options.pageSize + (after?.seen ?? 0);
    const keyset = after ? ` and ${c} >= :convey_after_cursor and (${c} > :convey_after_cursor or conversion_id >= :convey_after_id)` : '';
    const { rows } = await source.query(
      wrapped(mapping, `${inWindow(mapping.cursor)} and conversion_id is not null${keyset}${only}`, `order by ${c}, conversion_id\nlimit :convey_limit`),
      {
        window_start: window.start,
        window_end: window.end,
        convey_limit: limit,
        ...(after ? { convey_after_cursor: after.cursor, convey_after_id: after.id } : {}),
        ...(options.conversionIds ? { convey_ids: options.conversionIds } : {}),
      },
      PARAMETER_TYPES,
    ).catch((error: unknown) => {
      throw mappingError(mapping, error);
    });
    let skip = 0;
    if (after) {
      while (skip < after.seen && skip < rows.length && sameKey(rows[skip]!, mapping.cursor, after)) skip++;
    }
    const fresh = skip ? rows.slice(skip) : rows;
    if (fresh.length) yield fresh;
    if (rows.length < limit) return;
    const last = rows[rows.length - 1]!;
    const cursor = parseInstant(last[mapping.cursor]);
    if (!cursor) {
      throw new ConveyError('MAPPING_INVALID', `${mapping.file}: the cursor column "${mapping.cursor}" returned ${JSON.stringify(last[mapping.cursor])}, which is not a timestamp`, {
        hint: 'The cursor must be a timestamptz (or timestamp) column.',
      });
    }
    const key = { cursor, id: String(last.conversion_id), seen: 0 };
    let trailing = 0;
    for (let i = rows.length - 1; i >= 0 && sameKey(rows[i]!, mapping.cursor, key); i--) trailing++;
    key.seen = after && after.cursor === key.cursor && after.id === key.id ? after.seen + fresh.length : trailing;
    after = key;
  }
}

function sameKey(row: SourceRow, cursorColumn: string, key: { cursor: Instant; id: string }): boolean {
  return String(row.conversion_id) === key.id && parseInstant(row[cursorColumn]) === key.cursor;
}

/**
 * Rows the keyset reader cannot reach: a conversion_id that is null in the window, or a cursor
 * that is null (such a row belongs to no window at all). They are reported as rejects rather than
 * silently never read. At most `limit` per run.
 */
export async function incompleteRows(source: Source, mapping: Mapping, window: Window, limit: number): Promise<SourceRow[]> {
  const c = q(mapping.cursor);
  const { rows } = await source.query(
    wrapped(mapping, `where (${c} >= :window_start and ${c} < :window_end and conversion_id is null) or ${c} is null`, 'limit :convey_limit'),
    { window_start: window.start, window_end: window.end, convey_limit: limit },
    PARAMETER_TYPES,
  ).catch((error: unknown) => {
    throw mappingError(mapping, error);
  });
  return rows;
}

/** How many rows the window holds: only for the progress line's ETA on a terminal. */
export async function countWindow(source: Source, mapping: Mapping, window: Window): Promise<number> {
  const { rows } = await source.query(wrapped(mapping, inWindow(mapping.cursor), '', 'count(*)::text as n'), {
    window_start: window.start,
    window_end: window.end,
  }, PARAMETER_TYPES);
  return Number((rows[0] as { n: string }).n);
}
