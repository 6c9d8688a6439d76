import { ConveyError } from '../../errors.ts';
import { parseInstant } from '../../time/instant.ts';
import { openSource } from '../open.ts';
import { informationSchemaColumns, insertFixtureRows, quoteTableName, splitTableName, type ReviewEngine } from '../review.ts';
import { mysqlDialect } from './dialect.ts';

const quoteName = (name: string): string => quoteTableName(mysqlDialect.quoteIdent, name);

/** MySQL reads a DATETIME literal without a zone, and refuses `…Z` in strict mode: UTC wall clock (the session is UTC). */
const mysqlText = (value: string, type: string): string => {
  if (!/^(datetime|timestamp|date)\b/i.test(type)) return value;
  const instant = parseInstant(value);
  return instant ? `${instant.slice(0, 10)} ${instant.slice(11, 26)}` : value;
};

/**
 * MySQL and MariaDB have no embedded engine: a job's mapping tests run on the source itself, in
 * temporary tables (visible to this session only, and shadowing a real table of the same name),
 * dropped when each test ends. A rollback alone would not: MySQL's temporary tables are not
 * transactional.
 */
export const mysqlReview: ReviewEngine = {
  embeddedLabel: 'MySQL/MariaDB',
  embedded: undefined,
  async onSource(config) {
    // One connection: temporary tables belong to the session that made them.
    const source = await openSource(config, { command: 'convey test --on-source', session: true });
    const made: string[] = [];
    return {
      source,
      temporary: true,
      begin: async () => void (await source.execute('start transaction')),
      async createTable(table, columns) {
        if (splitTableName(table).schema) {
          throw new ConveyError('CONFIG_INVALID', `--on-source makes temporary tables; name ${table} without its database in the SQL and the tests`, {
            hint: 'A temporary table shadows the real table of the same name for this session only.',
          });
        }
        await source.execute(`create temporary table ${quoteName(table)} (${columns.map((c) => `${quoteName(c.name)} ${c.type}`).join(', ')})`);
        made.push(table);
      },
      // Bound as text without a cast: MySQL's CAST has no target for most column types, and an
      // insert converts a text value to its column's type.
      insertRows: (table, columns, rows) => insertFixtureRows(source, table, columns, rows, quoteName, (value) => value, mysqlText),
      async rollback() {
        await source.execute('rollback');
        for (const table of made.splice(0)) await source.execute(`drop temporary table if exists ${quoteName(table)}`);
      },
      close: () => source.close(),
    };
  },
  describeTable: (source, table) => informationSchemaColumns(source, table, { typeColumn: 'column_type', currentSchema: 'database()' }),
  async leadsAnIndex(source, table, column) {
    const { schema, name } = splitTableName(table);
    const { rows } = await source.execute(
      `select count(*) as n from information_schema.statistics
        where table_name = :name and table_schema = ${schema ? ':schema' : 'database()'} and seq_in_index = 1 and column_name = :column`,
      { name: { type: 'text', value: name }, column: { type: 'text', value: column }, ...(schema ? { schema: { type: 'text', value: schema } } : {}) },
    );
    return Number((rows[0] as { n: number | string }).n) > 0;
  },
  missingFunction(error) {
    for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
      // ER_SP_DOES_NOT_EXIST: "FUNCTION shop.json_build_object does not exist"
      if ((e as { errno?: number }).errno === 1305) return /FUNCTION (\S+) does not exist/.exec((e as { message?: string }).message ?? '')?.[1] ?? 'a function';
    }
    return undefined;
  },
};
