import type { SourceConfig } from '../config/project.ts';
import { startMemoryPostgres } from '../embedded/pglite.ts';
import { ConveyError } from '../errors.ts';
import type { Param } from './driver.ts';
import { openSource, sourceOver, type Source } from './open.ts';
import { postgresDriver } from './postgres/driver.ts';

/**
 * What `convey test`, `convey test --on-source` and `convey new --from` need of a source engine,
 * beyond reading a window: fixture tables on an embedded engine of the same dialect (or as
 * temporary tables on the source itself, rolled back), and the catalogue. Written once per engine;
 * the commands never ask which engine it is. PostgreSQL and PGlite share one implementation; a
 * DuckDB entry would open `:memory:` and read `information_schema` the same way.
 */
export interface ReviewEngine {
  /** For messages: "PostgreSQL (embedded PGlite, in memory)". */
  readonly embeddedLabel: string;
  /** A session on an embedded, in-memory engine of this dialect (nothing shared, nothing kept). */
  embedded(options: { cacheDir: string }): Promise<FixtureSession>;
  /** A session on the source itself, whose fixture tables are temporary and rolled back; undefined when the engine cannot. */
  onSource(config: SourceConfig): Promise<FixtureSession> | undefined;
  /** The columns of `table` (`schema.table` or `table`) and their declared types, from the catalogue; empty when there is no such table. */
  describeTable(source: Source, table: string): Promise<Array<{ name: string; type: string }>>;
  /** Whether an index (or sort key) of `table` starts with `column`; undefined when the engine cannot tell. */
  leadsAnIndex(source: Source, table: string, column: string): Promise<boolean | undefined>;
  /** Reads up to `limit` rows of `table`, every column as the source's driver returns it. */
  sampleRows(source: Source, table: string, limit: number): Promise<Array<Record<string, unknown>>>;
  /** The name of a missing function when `error` says the engine lacks one (a dialect difference), else undefined. */
  missingFunction(error: unknown): string | undefined;
}

/**
 * Fixture tables for one test at a time: `begin()` before a test's tables are made, `rollback()`
 * after, so the next test starts from nothing. Its `source` runs on one connection, inside that
 * transaction, and reads the fixture tables with the job's own SQL.
 */
export interface FixtureSession {
  source: Source;
  readonly temporary: boolean;
  begin(): Promise<void>;
  createTable(table: string, columns: ReadonlyArray<{ name: string; type: string }>): Promise<void>;
  insertRows(table: string, columns: ReadonlyArray<{ name: string; type: string }>, rows: ReadonlyArray<Record<string, unknown>>): Promise<void>;
  rollback(): Promise<void>;
  close(): Promise<void>;
}

/** PostgreSQL's way of quoting a name: `analytics.orders` → `"analytics"."orders"`. */
const quoteName = (name: string): string =>
  name
    .split('.')
    .map((part) => `"${part.replaceAll('"', '""')}"`)
    .join('.');

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
    async insertRows(table, columns, rows) {
      // One statement per 100 rows: each value bound as text and cast to its column's declared type.
      for (let i = 0; i < rows.length; i += 100) {
        const params: Record<string, Param> = {};
        const tuples = rows.slice(i, i + 100).map((row, r) =>
          `(${columns
            .map((c, k) => {
              const v = row[c.name];
              if (v === undefined || v === null) return `cast(null as ${c.type})`;
              params[`v${r}_${k}`] = { type: 'text', value: typeof v === 'object' ? JSON.stringify(v) : String(v) };
              return `cast(:v${r}_${k} as ${c.type})`;
            })
            .join(', ')})`,
        );
        await source.execute(`insert into ${quoteName(table)} (${columns.map((c) => quoteName(c.name)).join(', ')}) values ${tuples.join(', ')}`, params);
      }
    },
    rollback: async () => void (await source.execute('rollback')),
    async close() {
      await source.close();
      await closeEngine();
    },
  };
}

const postgres: ReviewEngine = {
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
  async sampleRows(source, table, limit) {
    return (await source.execute(`select * from ${quoteName(table)} limit :limit`, { limit: { type: 'integer', value: limit } })).rows;
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

/** The review engine for a source's client: the driver of each engine adds its entry here. */
export function reviewEngine(config: Pick<SourceConfig, 'client' | 'name' | 'file'>): ReviewEngine {
  switch (config.client) {
    case 'pg':
    case 'pglite':
      return postgres;
    default:
      throw new ConveyError('USAGE', `source "${config.name}" (client "${config.client}", ${config.file}): convey test, test --sample and new --from do not support this engine yet`, {
        hint: 'They run on PostgreSQL and PGlite sources today; plan and plan --compare work on every engine.',
      });
  }
}
