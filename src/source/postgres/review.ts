import { startMemoryPostgres } from '../../embedded/pglite.ts';
import { ConveyError } from '../../errors.ts';
import { openSource, sourceOver, type Source } from '../open.ts';
import { insertFixtureRows, quoteTableName, type FixtureSession, type ReviewEngine } from '../review.ts';
import { postgresDialect } from './dialect.ts';
import { postgresDriver } from './driver.ts';

const quoteName = (name: string): string => quoteTableName(postgresDialect.quoteIdent, name);

function postgresSession(source: Source, temporary: boolean, closeEngine: () => Promise<void>): FixtureSession {
  return {
    source,
    temporary,
    begin: async () => void (await source.execute('begin')),
    async createTable(table, columns) {
      const parts = table.split('.');
      if (parts.length > 1 && temporary) {
        throw new ConveyError('CONFIG_INVALID', `--on-source makes temporary tables, which have no schema: ${table} would be the real table`, {
          hint: 'Name the table without its schema in the SQL and the tests (the search_path finds it), or run the tests on the embedded engine (without --on-source).',
        });
      }
      if (parts.length > 1) await source.execute(`create schema if not exists ${quoteName(parts.slice(0, -1).join('.'))}`);
      const list = columns.map((c) => `${quoteName(c.name)} ${c.type}`).join(', ');
      await source.execute(`create ${temporary ? 'temporary ' : ''}table ${quoteName(table)} (${list})`);
    },
    insertRows: (table, columns, rows) => insertFixtureRows(source, table, columns, rows, quoteName, (value, type) => `cast(${value} as ${type})`),
    rollback: async () => void (await source.execute('rollback')),
    async close() {
      await source.close();
      await closeEngine();
    },
  };
}

/** PostgreSQL and PGlite: fixtures on an in-memory PGlite, or temporary tables on the source. */
export const postgresReview: ReviewEngine = {
  embeddedLabel: 'PostgreSQL (embedded PGlite, in memory)',
  async embedded({ cacheDir }) {
    const engine = await startMemoryPostgres(cacheDir);
    try {
      const driver = postgresDriver(engine.connection, { capabilities: { location: 'in-process', cancel: false }, maxConnections: 1 });
      const source = sourceOver({ name: 'embedded', file: 'convey test', client: 'pglite', dataDir: engine.dataDir, spoolAfterMs: 0 }, driver);
      return postgresSession(source, false, () => engine.close());
    } catch (error) {
      await engine.close();
      throw error;
    }
  },
  onSource(config) {
    // One connection, so that the transaction and its temporary tables are seen by every query.
    return openSource(config, { command: 'convey test --on-source', session: true }).then((source) => postgresSession(source, true, async () => undefined));
  },
  async describeTable(source, table) {
    const { rows } = await source.execute(
      `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type
         from pg_attribute a
        where a.attrelid = to_regclass(:table) and a.attnum > 0 and not a.attisdropped
        order by a.attnum`,
      { table: { type: 'text', value: quoteName(table) } },
    );
    return rows as Array<{ name: string; type: string }>;
  },
  async leadsAnIndex(source, table, column) {
    const { rows } = await source.execute(
      `select exists (
         select 1 from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
          where i.indrelid = to_regclass(:table) and a.attname = :column) as indexed`,
      { table: { type: 'text', value: quoteName(table) }, column: { type: 'text', value: column } },
    );
    return Boolean((rows[0] as { indexed: boolean }).indexed);
  },
  missingFunction(error) {
    for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
      const pgError = e as { code?: string; message?: string };
      // 42883: undefined_function
      if (pgError.code === '42883') return /function (\S+?\(.*?\))/.exec(pgError.message ?? '')?.[1] ?? 'a function';
    }
    return undefined;
  },
};
