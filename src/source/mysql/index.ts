import mysql from 'mysql2';
import type { Pool, PoolConnection, PoolOptions } from 'mysql2';
import type { Driver, ErrorKind, SourceRow } from '../driver.ts';
import type { Engine } from '../engines.ts';
import { mysqlDialect } from './dialect.ts';

/**
 * MySQL 8 and MariaDB 10.6+ through mysql2, with statements prepared on the server (values are
 * bound, never spliced). mysql2's defaults would lose what convey needs: DATETIME becomes a JS
 * Date (microseconds gone, the process's zone applied), JSON is parsed (integer-like keys, the
 * experiment ids, reordered) and BIGINT beyond 2^53 loses digits. All three arrive as text here.
 */
export const mysqlEngine: Engine = {
  async open(config, context) {
    if (config.client !== 'mysql') throw new Error(`mysql engine given a ${config.client} source`);
    const options: PoolOptions = {
      ...(typeof config.connection === 'string' ? { uri: config.connection } : (config.connection as PoolOptions)),
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      jsonStrings: true,
      decimalNumbers: false,
      // One connection reads the window; a second one can stop it (KILL QUERY).
      connectionLimit: context.session ? 1 : Math.max(2, config.poolMax ?? 2),
    };
    const pool = mysql.createPool(options);
    const driver = mysqlDriver(pool, config.statementTimeoutMs, !context.session);
    // Connect now, so a wrong address or password is reported as such before anything else.
    await driver.execute('select 1', []).catch(async (error: unknown) => {
      await driver.close();
      throw error;
    });
    return driver;
  },
  classify: classifyMysqlError,
};

type Connection = PoolConnection & { conveyReady?: boolean };

function mysqlDriver(pool: Pool, statementTimeoutMs: number | undefined, cancellable: boolean): Driver {
  let flavour: 'mariadb' | 'mysql' | undefined;
  const query = (connection: Connection, sql: string, values: unknown[] = []): Promise<{ rows: SourceRow[]; columns: string[] }> =>
    new Promise((resolve, reject) => {
      connection.execute(sql, values as never, (error, rows, fields) => {
        if (error) reject(error);
        else resolve({ rows: rows as SourceRow[], columns: (fields ?? []).map((f) => f.name) });
      });
    });
  const acquire = async (): Promise<Connection> => {
    const connection = await new Promise<Connection>((resolve, reject) => pool.getConnection((error, c) => (error ? reject(error) : resolve(c))));
    if (connection.conveyReady) return connection;
    try {
      // The server's own time_zone may be anything: TIMESTAMP columns are converted through the session's.
      await query(connection, "set time_zone = '+00:00'");
      flavour ??= /mariadb/i.test(String((await query(connection, 'select version() as v')).rows[0]!.v)) ? 'mariadb' : 'mysql';
      if (statementTimeoutMs) {
        // MariaDB counts seconds (any statement); MySQL milliseconds (SELECT only, which is all convey runs).
        if (flavour === 'mariadb') await query(connection, 'set session max_statement_time = ?', [statementTimeoutMs / 1000]);
        else await query(connection, 'set session max_execution_time = ?', [statementTimeoutMs]);
      }
    } catch (error) {
      connection.destroy();
      throw error;
    }
    connection.conveyReady = true;
    return connection;
  };
  // From a second connection; a session (one connection) has none to spare.
  const kill = (threadId: number): void => {
    if (cancellable) pool.query('kill query ?', [threadId], () => undefined);
  };
  const run = async (text: string, values: unknown[]): Promise<{ rows: SourceRow[]; columns: string[] }> => {
    const connection = await acquire();
    try {
      return await query(connection, text, values);
    } finally {
      connection.release();
    }
  };

  return {
    dialect: mysqlDialect,
    capabilities: { location: 'server', cancel: cancellable },
    columns: async (text, values) => (await run(text, values)).columns,
    execute: run,
    async *stream(text, values, { fetchRows, signal }) {
      if (signal?.aborted) return;
      const connection = await acquire();
      // Rows wait in the stream's buffer; when it is full mysql2 stops reading the socket.
      const rows = connection.execute(text, values as never).stream({ highWaterMark: fetchRows });
      const onAbort = (): void => kill(connection.threadId);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort(); // fired while the connection was being taken
      // A connection lost mid-result is reported on the connection only: the row stream would wait
      // for ever (measured with mysql2 3.25 behind a relay that cut the socket).
      const onLost = (error: Error): void => void rows.destroy(error);
      connection.on('error', onLost);
      let clean = false;
      try {
        let chunk: SourceRow[] = [];
        for await (const row of rows) {
          chunk.push(row as SourceRow);
          if (chunk.length >= fetchRows) {
            yield chunk;
            chunk = [];
          }
        }
        if (chunk.length) yield chunk;
        clean = true;
      } catch (error) {
        if (signal?.aborted) return;
        throw error;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        connection.removeListener('error', onLost);
        if (clean) connection.release();
        else {
          // Stopped early or failed: the server is still sending the result. Stop it, and drop
          // the connection rather than hand a half-read one back to the pool.
          if (!signal?.aborted) kill(connection.threadId);
          rows.destroy();
          connection.destroy();
        }
      }
    },
    classify: classifyMysqlError,
    async close() {
      await new Promise<void>((resolve) => pool.end(() => resolve()));
    },
  };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
const LOST = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'EPIPE']);

export function classifyMysqlError(error: unknown): ErrorKind {
  const { code, errno, sqlState } = (error ?? {}) as { code?: string; errno?: number; sqlState?: string };
  if ((code && UNREACHABLE.has(code)) || errno === 1044 || errno === 1045 || errno === 1049) return 'unreachable';
  if ((code && LOST.has(code)) || errno === 2006 || errno === 2013 || errno === 1053 || errno === 1927) return 'connection-lost';
  if (errno === 1969 || errno === 3024) return 'timeout';
  // SQLSTATE 42: syntax, unknown table, column or function, duplicate column name.
  if (sqlState?.startsWith('42') || errno === 1305 || errno === 1582 || errno === 1583) return 'mapping';
  return 'other';
}
