import pg from 'pg';
import Cursor from 'pg-cursor';
import type { Driver, ErrorKind, SourceCapabilities, SourceRow } from '../driver.ts';
import { postgresDialect } from './dialect.ts';

/**
 * Timestamps and dates arrive as the server's text, never as a JS Date (which keeps milliseconds);
 * json and jsonb as text too: JSON.parse would put integer-like keys (experiment ids) in numeric
 * order, and the classic call sends its x parameters in the order the SQL wrote them. int8 and
 * numeric already arrive as text.
 */
const TEXT_TYPES = new Set([1184, 1114, 1082, 114, 3802]);
const sourceTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (TEXT_TYPES.has(oid)) return (value: string) => value;
    return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid);
  },
} as pg.CustomTypesConfig;

export interface PostgresOptions {
  capabilities: SourceCapabilities;
  /** PGlite serves one session: one connection, and no second one to cancel from. */
  maxConnections: number;
  statementTimeoutMs?: number;
}

/** PostgreSQL through node-postgres; a window is read through one portal (pg-cursor), a chunk per round trip. */
export function postgresDriver(connection: pg.ClientConfig, options: PostgresOptions): Driver {
  const pool = new pg.Pool({
    ...connection,
    types: sourceTypes,
    application_name: 'convey',
    max: options.maxConnections,
    ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    // The single embedded connection is the source itself: never closed as idle.
    idleTimeoutMillis: options.maxConnections === 1 ? 0 : 10_000,
    // instantText prints in the session's zone, which must be UTC for a timestamp without zone to
    // read as UTC. The output style is set too: a database set to `datestyle = 'SQL, DMY'` printed
    // `01/03/2026 10:00:00 UTC` for the other timestamp columns a row carries.
    onConnect: async (client) => {
      await client.query("set time zone 'UTC'; set datestyle to 'ISO'");
    },
  });
  // An idle connection the server drops emits here; unheard, it would end the process. The next
  // statement on the pool fails instead, and is reported.
  pool.on('error', () => undefined);
  const cancellable = options.capabilities.cancel && options.maxConnections > 1;

  const run = async (text: string, values: unknown[]): Promise<{ rows: SourceRow[]; columns: string[] }> => {
    type Result = { rows: SourceRow[]; fields: Array<{ name: string }> };
    const raw = (await pool.query(text, values)) as unknown as Result | Result[];
    // A script of several statements (the demo's seed) answers with one result each.
    const result = Array.isArray(raw) ? raw[raw.length - 1]! : raw;
    return { rows: result.rows, columns: result.fields.map((f) => f.name) };
  };

  return {
    dialect: postgresDialect,
    capabilities: options.capabilities,
    columns: async (text, values) => (await run(text, values)).columns,
    execute: run,
    async *stream(text, values, { fetchRows, signal }) {
      if (signal?.aborted) return;
      const client = await pool.connect();
      let broken: Error | undefined;
      // A connection dropped while checked out emits 'error' here, not on the pool.
      const onError = (error: Error): void => {
        broken ??= error;
      };
      client.on('error', onError);
      const cursor = client.query(new Cursor<SourceRow>(text, values, { types: sourceTypes }));
      // A statement still computing its first rows (a sort over the window) only stops when the
      // server is told to; a closed socket would leave it running.
      const cancel = (): void => {
        const pid = (client as unknown as { processID?: number }).processID;
        if (cancellable && pid) pool.query('select pg_cancel_backend($1)', [pid]).catch(() => undefined);
      };
      signal?.addEventListener('abort', cancel, { once: true });
      if (signal?.aborted) cancel(); // fired while the connection was being taken
      let failed = false;
      try {
        for (;;) {
          if (signal?.aborted) return;
          const rows = await cursor.read(fetchRows);
          if (!rows.length) return;
          yield rows;
        }
      } catch (error) {
        failed = true;
        if (signal?.aborted) return;
        throw error;
      } finally {
        signal?.removeEventListener('abort', cancel);
        // Closing the portal ends its transaction; on a broken connection there is nothing to close.
        if (!failed && !broken) await cursor.close().catch(() => (failed = true));
        client.removeListener('error', onError);
        client.release(failed || broken ? (broken ?? true) : undefined);
      }
    },
    classify: classifyPostgresError,
    async close() {
      await pool.end();
    },
  };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', '28000', '28P01', '3D000', '57P03']);
const LOST = new Set(['ECONNRESET', 'EPIPE', '57P01', '57P02', '08000', '08003', '08006']);

export function classifyPostgresError(error: unknown): ErrorKind {
  const { code, message = '' } = (error ?? {}) as { code?: string; message?: string };
  // Class 42: syntax errors, unknown tables, columns and functions: the mapping's fault.
  if (code?.startsWith('42')) return 'mapping';
  if (code === '57014') return 'timeout';
  if (code && UNREACHABLE.has(code)) return 'unreachable';
  if ((code && LOST.has(code)) || /Connection terminated|not queryable|connection error/i.test(message)) return 'connection-lost';
  return 'other';
}
