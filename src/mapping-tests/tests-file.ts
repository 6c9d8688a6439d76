import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { validateMappingTests } from '../config/schema-check.ts';
import { ConveyError } from '../errors.ts';
import { parseInstant } from '../time/instant.ts';
import type { Window } from '../time/window.ts';

/** jobs/<job>.tests.json, checked against schema/tests.schema.json; CSV fixtures read in. */
export interface TestsFile {
  /** jobs/<job>.tests.json, for messages. */
  file: string;
  path: string;
  /** As written, for --record to write back with only the expectations changed. */
  document: TestsDocument;
  tables: Map<string, Column[]>;
  tests: MappingTest[];
}

export interface Column {
  name: string;
  type: string;
}

export interface Expectations {
  conversions?: Array<Record<string, unknown> & { conversion_id: string }>;
  rejects?: Array<{ conversion_id?: string | null; reason: string }>;
  requests?: Array<{ method?: string; url?: string; body?: unknown }>;
  alreadySent?: string[];
}

export interface MappingTest {
  name: string;
  window: Window;
  rows: Map<string, Array<Record<string, unknown>>>;
  sent: string[];
  expect: Expectations;
}

export interface TestsDocument {
  $schema?: string;
  tables: Record<string, { columns: Record<string, string> }>;
  tests: Array<{ name: string; description?: string; window?: { start: string; end: string }; rows: Record<string, unknown[] | string>; ledger?: { sent?: string[] }; expect?: Expectations }>;
}

/** Without a window, a test reads all of time. */
export const ALL_TIME: Window = { start: parseInstant('1900-01-01T00:00:00Z')!, end: parseInstant('9999-01-01T00:00:00Z')! };

export const testsFileOf = (job: string): string => `jobs/${job}.tests.json`;

export function loadTestsFile(projectDir: string, job: string): TestsFile | undefined {
  const file = testsFileOf(job);
  const path = join(projectDir, file);
  if (!existsSync(path)) return undefined;
  let document: TestsDocument;
  try {
    document = JSON.parse(readFileSync(path, 'utf8').replace(/^\uFEFF/, '')) as TestsDocument;
  } catch (error) {
    throw new ConveyError('CONFIG_INVALID', `${file} is not valid JSON: ${(error as Error).message}`, { hint: 'Fix the syntax; the $schema line gives your editor checking.' });
  }
  return parseTests(file, path, document);
}

export function parseTests(file: string, path: string, document: TestsDocument): TestsFile {
  const problems = validateMappingTests(structuredClone(document));
  if (problems.length) throw invalid(file, problems);
  const tables = new Map(Object.entries(document.tables).map(([name, t]) => [name, Object.entries(t.columns).map(([c, type]) => ({ name: c, type }))]));
  const tests = document.tests.map((test, i): MappingTest => {
    const at = `tests[${i}] ("${test.name}")`;
    const rows = new Map<string, Array<Record<string, unknown>>>();
    for (const [table, given] of Object.entries(test.rows)) {
      const columns = tables.get(table);
      if (!columns) throw invalid(file, [`${at}.rows.${table}: the table is not declared in "tables" (declare its columns and their types)`]);
      const list = typeof given === 'string' ? readCsv(join(dirname(path), given), `${at}.rows.${table}`, file) : (given as Array<Record<string, unknown>>);
      list.forEach((row, r) => {
        for (const key of Object.keys(row)) {
          if (!columns.some((c) => c.name === key)) throw invalid(file, [`${at}.rows.${table}[${r}].${key}: ${table} has no column "${key}" in "tables"`]);
        }
      });
      rows.set(table, list);
    }
    let window = ALL_TIME;
    if (test.window) {
      const start = parseInstant(test.window.start);
      const end = parseInstant(test.window.end);
      if (!start || !end || end <= start) throw invalid(file, [`${at}.window: end must be a time after start`]);
      window = { start, end };
    }
    return { name: test.name, window, rows, sent: test.ledger?.sent ?? [], expect: test.expect ?? {} };
  });
  const names = document.tests.map((t) => t.name);
  const repeated = names.filter((n, i) => names.indexOf(n) !== i);
  if (repeated.length) throw invalid(file, [`test names must differ: "${repeated[0]}" is used twice`]);
  return { file, path, document, tables, tests };
}

export function writeTestsFile(tests: Pick<TestsFile, 'path'>, document: TestsDocument): void {
  writeFileSync(tests.path, JSON.stringify(document, null, 2) + '\n');
}

function invalid(file: string, problems: string[]): ConveyError {
  return new ConveyError('CONFIG_INVALID', problems.map((p) => `${file}: ${p}`).join('\n'), {
    hint: `Fix ${file}; schema/tests.schema.json describes it.`,
    details: { file, problems },
  });
}

/**
 * A CSV file with a header line (RFC 4180: fields in double quotes may hold commas, quotes written
 * twice and line breaks); an empty unquoted cell is NULL. Twenty lines rather than a dependency:
 * fixtures are small and this is all of the format they use.
 */
function readCsv(path: string, at: string, file: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) throw invalid(file, [`${at}: ${path} does not exist`]);
  const text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  const records: Array<Array<string | null>> = [];
  let record: Array<string | null> = [];
  let i = 0;
  while (i <= text.length) {
    let cell: string | null;
    if (text[i] === '"') {
      let j = i + 1;
      let value = '';
      for (;;) {
        const q = text.indexOf('"', j);
        if (q === -1) throw invalid(file, [`${at}: ${path} has a quote that is never closed`]);
        value += text.slice(j, q);
        if (text[q + 1] === '"') {
          value += '"';
          j = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      cell = value;
    } else {
      let j = i;
      while (j < text.length && text[j] !== ',' && text[j] !== '\n' && text[j] !== '\r') j++;
      cell = j === i ? null : text.slice(i, j);
      i = j;
    }
    record.push(cell);
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '\r') i++;
    i++;
    if (record.length > 1 || record[0] !== null) records.push(record);
    record = [];
  }
  const [header, ...rows] = records;
  if (!header) return [];
  return rows.map((cells) => Object.fromEntries(header.map((name, k) => [name ?? '', cells[k] ?? null])));
}
