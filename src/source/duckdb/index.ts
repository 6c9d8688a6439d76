import { existsSync } from 'node:fs';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { Driver, ErrorKind, SourceRow } from '../driver.ts';
import type { Engine } from '../engines.ts';
import { duckdbDialect } from './dialect.ts';

/**
 * DuckDB, in this process: a database file (opened read-only: convey never writes to a source),
 * or an in-memory database for files queried in place (`read_parquet('exports/*.parquet')`, CSV,
 * JSON), whose relative paths are read from the project folder.
 */
export const duckdbEngine: Engine = {
  async open(config) {
    if (config.client !== 'duckdb') throw new Error(`duckdb engine given a ${config.client} source`);
    // DuckDB would create an empty database for a path that does not exist; read-only it refuses.
    if (config.path && !existsSync(config.path)) {
      throw Object.assign(new Error(`the DuckDB database ${config.path} does not exist`), { code: 'ENOENT' });
    }
    return openDuckdb(config);
  },
  classify: classifyDuckdbError,
};

/**
 * A DuckDB database file (read-only: convey never writes to a source), or with no path a new
 * in-memory database (files queried in place; `convey test`'s fixtures).
 */
export async function openDuckdb(options: { path?: string; projectDir: string; statementTimeoutMs?: number }): Promise<Driver> {
  const instance = await DuckDBInstance.create(options.path ?? ':memory:', options.path ? { access_mode: 'READ_ONLY' } : {});
  const connection = await instance.connect();
  // Timestamps without a zone (Parquet files often have them) are then read as UTC.
  await connection.run(`SET TimeZone = 'UTC'`);
  await connection.run(`SET file_search_path = $1`, [options.projectDir]);
  return duckdbDriver(instance, connection, options.statementTimeoutMs, options.projectDir);
}

function duckdbDriver(instance: DuckDBInstance, connection: DuckDBConnection, statementTimeoutMs: number | undefined, projectDir: string): Driver {
  /** DuckDB has no statement timeout of its own: a timer interrupts the connection. */
  const deadline = (): { expired: boolean; error(cause: unknown): unknown; clear(): void } => {
    const state = {
      expired: false,
      error: (cause: unknown): unknown =>
        state.expired ? Object.assign(new Error(`statement timeout: the query ran longer than ${statementTimeoutMs} ms`), { code: 'TIMEOUT', cause }) : cause,
      clear: () => clearTimeout(timer),
    };
    const timer = statementTimeoutMs
      ? setTimeout(() => {
          state.expired = true;
          connection.interrupt();
        }, statementTimeoutMs)
      : undefined;
    return state;
  };
  const execute = async (text: string, values: unknown[]): Promise<{ rows: SourceRow[]; columns: string[] }> => {
    const timeout = deadline();
    try {
      const reader = await connection.runAndReadAll(text, values as never);
      return { rows: reader.getRowObjectsJson() as SourceRow[], columns: reader.columnNames() };
    } catch (error) {
      throw timeout.error(error);
    } finally {
      timeout.clear();
    }
  };
  return {
    dialect: duckdbDialect,
    capabilities: { location: 'in-process', cancel: true },
    // Prepared, never run: DuckDB knows a statement's columns without computing it (a LIMIT 0
    // still evaluated an uncorrelated subquery in the job's SQL, for minutes).
    async columns(text) {
      const prepared = await connection.prepare(text);
      try {
        return Array.from({ length: prepared.columnCount }, (_, i) => prepared.columnName(i));
      } finally {
        prepared.destroySync();
      }
    },
    execute,
    async *stream(text, values, { signal }) {
      // A listener added to a signal that already fired never runs: the query would start anyway.
      if (signal?.aborted) return;
      const onAbort = (): void => connection.interrupt();
      signal?.addEventListener('abort', onAbort, { once: true });
      const timeout = deadline();
      try {
        const result = await connection.stream(text, values as never);
        // The JSON conversion keeps what convey needs exactly: timestamps and BIGINT as text, JSON
        // as its text (key order kept), DECIMAL as text. Rows come a vector (2,048) at a time.
        for await (const rows of result.yieldRowObjectJson()) {
          if (signal?.aborted) return;
          yield rows as SourceRow[];
        }
      } catch (error) {
        if (signal?.aborted) return;
        throw timeout.error(error);
      } finally {
        timeout.clear();
        signal?.removeEventListener('abort', onAbort);
      }
    },
    classify: classifyDuckdbError,
    hint: (error) =>
      /No files found/.test((error as Error).message ?? '')
        ? `Relative paths in the job's SQL are read from the project folder (${projectDir}). Check that the export ran and that the pattern matches its files.`
        : undefined,
    async close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

export function classifyDuckdbError(error: unknown): ErrorKind {
  const { code, message = '' } = (error ?? {}) as { code?: string; message?: string };
  if (code === 'ENOENT' || /^IO Error: (Cannot open|Could not set lock)/.test(message)) return 'unreachable';
  if (code === 'TIMEOUT') return 'timeout';
  // The job's SQL: its syntax, names, types, and the files it reads (a glob that matches nothing).
  // Streamed statements report it as "Failed to extract statements: Parser Error: …".
  if (/\b(Parser|Binder|Catalog|Conversion) Error|IO Error: No files found|Invalid Input Error/.test(message)) return 'mapping';
  return 'other';
}
