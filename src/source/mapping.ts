import { CANONICAL_COLUMNS, REQUIRED_COLUMNS } from '../check/conversion.ts';
import { didYouMean } from '../config/did-you-mean.ts';
import { ConveyError } from '../errors.ts';
import type { Window } from '../time/window.ts';
import type { Param } from './driver.ts';
import { SourceError, type Source } from './open.ts';
import { parameterNames, statementBody } from './sql-text.ts';

export interface Mapping {
  /** The job's SQL, as written. */
  sql: string;
  /** For messages: jobs/<name>.sql */
  file: string;
  cursor: string;
}

/** A mapping whose columns the source has described, checked before anything is read. */
export interface DescribedMapping extends Mapping {
  /** Each column as the engine names it, and the name convey reads it as (lower case). */
  columns: ReadonlyArray<{ name: string; as: string }>;
  /** The lower-case names, for the destination's check. */
  names: ReadonlySet<string>;
}

/** The parameters a job's SQL may use. */
export const MAPPING_PARAMETERS = ['window_start', 'window_end'] as const;

export const windowParams = (window: Window): Record<(typeof MAPPING_PARAMETERS)[number], Param> => ({
  window_start: { type: 'instant', value: window.start },
  window_end: { type: 'instant', value: window.end },
});

/**
 * The job's SQL is wrapped, never edited: convey selects from it as a derived table and adds the
 * window, the order and any keyset condition around it. A trailing semicolon would end the
 * statement inside the parentheses, so it is dropped, with any comment after it.
 */
export function wrapped(source: Source, mapping: Mapping, rest: string, select = '*'): string {
  return `select ${select} from (\n${statementBody(mapping.sql, source.dialect.lexer)}\n) as convey_mapping\n${rest}`;
}

/**
 * Runs the mapping for zero rows to learn its columns, and checks them before anything is read:
 * required columns, the cursor, and no unknown column (a misspelt `revenue` must not silently
 * send no revenue). Columns starting with `_` are ignored on purpose (for notes and debugging).
 * Names are read without regard to case: MySQL and DuckDB return `AS Conversion_ID` as written.
 */
export async function describeMapping(source: Source, mapping: Mapping, window: Window): Promise<DescribedMapping> {
  const unknown = parameterNames(mapping.sql, source.dialect.lexer).filter((p) => !(MAPPING_PARAMETERS as readonly string[]).includes(p));
  if (unknown.length) {
    throw new ConveyError('MAPPING_INVALID', `${mapping.file}: it uses :${unknown[0]}, which convey does not bind`, {
      hint: `The parameters are ${MAPPING_PARAMETERS.map((p) => `:${p}`).join(' and ')} (timestamps). Write PostgreSQL casts as ::type, with two colons.`,
    });
  }
  const engineNames = await source.columns(wrapped(source, mapping, 'limit 0'), windowParams(window)).catch((error: unknown) => {
    throw mappingError(mapping, error);
  });
  const columns = engineNames.map((name) => ({ name, as: name.toLowerCase() }));
  const names = columns.map((c) => c.as);
  const set = new Set(names);
  const known = new Set<string>([...CANONICAL_COLUMNS, mapping.cursor]);
  const problems: string[] = [];
  for (const column of new Set([...REQUIRED_COLUMNS, mapping.cursor])) {
    if (!set.has(column)) problems.push(`it returns no "${column}" column, which is required`);
  }
  for (const column of names) {
    if (known.has(column) || column.startsWith('_')) continue;
    const guess = didYouMean(column, [...known]);
    problems.push(
      `it returns "${column}", which is not a convey column${guess ? ` (did you mean "${guess}"?)` : ''}; rename it with AS, or prefix it with _ to keep it out of the request`,
    );
  }
  const duplicated = names.filter((c, i) => names.indexOf(c) !== i);
  for (const column of new Set(duplicated)) problems.push(`it returns "${column}" twice`);
  if (problems.length) {
    throw new ConveyError('MAPPING_INVALID', problems.map((p) => `${mapping.file}: ${p}`).join('\n'), {
      hint: `Canonical columns: ${CANONICAL_COLUMNS.join(', ')}. README "Writing a job" has the table.`,
      details: { problems },
    });
  }
  return { ...mapping, columns, names: set };
}

/** A source error caused by the job's SQL (syntax, unknown names, no files) names the job's file. */
export function mappingError(mapping: Mapping, error: unknown): unknown {
  if (error instanceof SourceError && error.kind === 'mapping') {
    return new ConveyError('MAPPING_INVALID', `${mapping.file}: ${error.message}`, { cause: error, hint: error.hint });
  }
  return error;
}
