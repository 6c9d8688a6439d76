import type { SourceConfig } from '../config/project.ts';
import type { Param } from './driver.ts';
import { ENGINES } from './engines.ts';
import type { Source } from './open.ts';

/**
 * What `convey test`, `convey test --on-source` and `convey new --from` need of a source engine,
 * beyond reading a window: fixture tables on an embedded engine of the same dialect (or as
 * temporary tables on the source itself, rolled back), and the catalogue. Written once per engine;
 * the commands never ask which engine it is: each engine's folder has a review.ts, loaded with
 * its driver (engines.ts).
 */
export interface ReviewEngine {
  /** For messages: "PostgreSQL (embedded PGlite, in memory)". */
  readonly embeddedLabel: string;
  /**
   * A session on an embedded, in-memory engine of this dialect (nothing shared, nothing kept);
   * undefined for an engine that has none (MySQL): its tests run on the source.
   */
  readonly embedded: ((options: { cacheDir: string; projectDir: string }) => Promise<FixtureSession>) | undefined;
  /** A session on the source itself, whose fixture tables are temporary and rolled back; undefined when the engine cannot. */
  onSource(config: SourceConfig): Promise<FixtureSession> | undefined;
  /** The columns of `table` (`schema.table` or `table`) and their declared types, from the catalogue; empty when there is no such table. */
  describeTable(source: Source, table: string): Promise<Array<{ name: string; type: string }>>;
  /** Whether an index (or sort key) of `table` starts with `column`; undefined when the engine cannot tell. */
  leadsAnIndex(source: Source, table: string, column: string): Promise<boolean | undefined>;
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

/** The review engine of a source's engine, loaded only now (as its driver is). */
export function loadReviewEngine(config: Pick<SourceConfig, 'client'>): Promise<ReviewEngine> {
  return ENGINES[config.client].review();
}

/**
 * Rows of fixture values, `perStatement` rows to an INSERT: each value bound as text and turned
 * into its column's declared type by `cast(value)` (engines without a cast to every type leave it
 * to the column). The same for every engine but the placeholder.
 */
export async function insertFixtureRows(
  source: Source,
  table: string,
  columns: ReadonlyArray<{ name: string; type: string }>,
  rows: ReadonlyArray<Record<string, unknown>>,
  quote: (name: string) => string,
  cast: (placeholder: string, type: string) => string,
  /** The text bound for a value of a column of `type`, where the engine reads some forms differently. */
  text: (value: string, type: string) => string = (value) => value,
): Promise<void> {
  for (let i = 0; i < rows.length; i += 100) {
    const params: Record<string, Param> = {};
    const tuples = rows.slice(i, i + 100).map(
      (row, r) =>
        `(${columns
          .map((c, k) => {
            const v = row[c.name];
            if (v === undefined || v === null) return 'null';
            params[`v${r}_${k}`] = { type: 'text', value: text(typeof v === 'object' ? JSON.stringify(v) : String(v), c.type) };
            return cast(`:v${r}_${k}`, c.type);
          })
          .join(', ')})`,
    );
    await source.execute(`insert into ${quote(table)} (${columns.map((c) => quote(c.name)).join(', ')}) values ${tuples.join(', ')}`, params);
  }
}

/** A possibly qualified name, `analytics.orders`, quoted part by part in the dialect's way. */
export function quoteTableName(quoteIdent: (name: string) => string, table: string): string {
  return table.split('.').map(quoteIdent).join('.');
}

/** Up to `limit` rows of `table`, every column as the source's driver returns it: a first test's fixture. */
export async function sampleRows(source: Source, table: string, limit: number): Promise<Array<Record<string, unknown>>> {
  const sql = `select * from ${quoteTableName(source.dialect.quoteIdent, table)} limit :limit`;
  return (await source.execute(sql, { limit: { type: 'integer', value: limit } })).rows;
}

/**
 * A table's columns and declared types from the SQL standard's catalogue (DuckDB, MySQL), the
 * schema defaulting to the session's: `typeColumn` and `currentSchema` are where engines differ.
 */
export async function informationSchemaColumns(
  source: Source,
  table: string,
  dialect: { typeColumn: string; currentSchema: string },
): Promise<Array<{ name: string; type: string }>> {
  const { schema, name } = splitTableName(table);
  const { rows } = await source.execute(
    `select column_name as name, ${dialect.typeColumn} as type from information_schema.columns
      where table_name = :name and table_schema = ${schema ? ':schema' : dialect.currentSchema} order by ordinal_position`,
    { name: { type: 'text', value: name }, ...(schema ? { schema: { type: 'text', value: schema } } : {}) },
  );
  return rows as Array<{ name: string; type: string }>;
}

/** Splits `schema.table` for catalogue lookups; `schema` is undefined for a bare name. */
export function splitTableName(table: string): { schema: string | undefined; name: string } {
  const parts = table.split('.');
  return parts.length > 1 ? { schema: parts.slice(0, -1).join('.'), name: parts.at(-1)! } : { schema: undefined, name: table };
}
