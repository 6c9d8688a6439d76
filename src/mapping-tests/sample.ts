import { ConveyError } from '../errors.ts';
import type { Source } from '../source/open.ts';
import { sampleRows, type ReviewEngine } from '../source/review.ts';
import type { TestsDocument } from './tests-file.ts';

/** Columns whose values identify people: in a fixture committed to a repository they are replaced. */
const IDENTIFYING = /visitor|user_?id|email|customer_?id|phone|ip_?addr/i;

/**
 * A test made of `limit` real rows of each table, its columns' types from the catalogue, values
 * that identify people replaced by stand-ins (`visitor-1`, the same stand-in for the same value so
 * that joins and repeats still match). Appended to `document` (or a new one); its expectations
 * are left for `--record` to fill.
 */
export async function sampleTest(source: Source, engine: ReviewEngine, tables: readonly string[], limit: number, document: TestsDocument | undefined, name: string): Promise<TestsDocument> {
  const doc: TestsDocument = document ? structuredClone(document) : { $schema: '../schema/tests.schema.json', tables: {}, tests: [] };
  const rows: Record<string, unknown[]> = {};
  const standIns = new Map<string, string>();
  for (const table of tables) {
    const columns = await engine.describeTable(source, table);
    if (!columns.length) {
      throw new ConveyError('USAGE', `source "${source.name}" has no table ${table}`, { hint: 'Name a table the job reads, as schema.table or as the search path finds it.' });
    }
    doc.tables[table] ??= { columns: Object.fromEntries(columns.map((c) => [c.name, c.type])) };
    rows[table] = (await sampleRows(source, table, limit)).map((row) =>
      Object.fromEntries(
        Object.entries(row).map(([column, value]) => {
          if (value === null || !IDENTIFYING.test(column)) return [column, value];
          const text = String(value);
          if (!standIns.has(text)) standIns.set(text, `visitor-${standIns.size + 1}`);
          return [column, standIns.get(text)];
        }),
      ),
    );
  }
  doc.tests.push({ name, rows });
  return doc;
}
