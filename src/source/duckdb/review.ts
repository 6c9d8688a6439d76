import { sourceOver } from '../open.ts';
import { informationSchemaColumns, insertFixtureRows, quoteTableName, splitTableName, type ReviewEngine } from '../review.ts';
import { duckdbDialect } from './dialect.ts';
import { openDuckdb } from './index.ts';

const quoteName = (name: string): string => quoteTableName(duckdbDialect.quoteIdent, name);

/**
 * DuckDB: fixtures in a new in-memory DuckDB (the same engine a DuckDB job reads with), created
 * in a transaction that is rolled back after each test. A DuckDB source is a file opened
 * read-only, or files read in place: there is nothing to hold temporary tables on it that the
 * in-memory engine does not already test.
 */
export const duckdbReview: ReviewEngine = {
  embeddedLabel: 'DuckDB (in memory)',
  async embedded({ projectDir }) {
    // Relative paths in the job's SQL are read from the project folder, as in a run.
    const driver = await openDuckdb({ projectDir });
    const source = sourceOver({ name: 'embedded', file: 'convey test', client: 'duckdb', projectDir, spoolAfterMs: 0 }, driver);
    return {
      source,
      temporary: false,
      begin: async () => void (await source.execute('begin transaction')),
      async createTable(table, columns) {
        const { schema } = splitTableName(table);
        if (schema) await source.execute(`create schema if not exists ${quoteName(schema)}`);
        await source.execute(`create table ${quoteName(table)} (${columns.map((c) => `${quoteName(c.name)} ${c.type}`).join(', ')})`);
      },
      insertRows: (table, columns, rows) => insertFixtureRows(source, table, columns, rows, quoteName, (value, type) => `cast(${value} as ${type})`),
      rollback: async () => void (await source.execute('rollback')),
      close: () => source.close(),
    };
  },
  onSource: () => undefined,
  describeTable: (source, table) => informationSchemaColumns(source, table, { typeColumn: 'data_type', currentSchema: 'current_schema()' }),
  // DuckDB keeps min/max zone maps for every column instead of indexes a range scan starts from.
  leadsAnIndex: async () => undefined,
  missingFunction(error) {
    for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
      const name = /Scalar Function with name (\S+) does not exist/.exec((e as { message?: string }).message ?? '')?.[1];
      if (name) return name;
    }
    return undefined;
  },
};
