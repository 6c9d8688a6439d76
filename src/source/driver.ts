import type { SqlLexer } from './sql-text.ts';

/**
 * What one engine (PostgreSQL, PGlite, DuckDB, MySQL/MariaDB, …) must provide. Each lives in its
 * own folder under src/source/ and is loaded only when a job reads from it (engines.ts). Shared
 * code (read-window.ts, mapping.ts) builds the SQL around a job from the dialect and branches on
 * the capabilities a driver declares, never on which engine it is.
 */

/** A row as the driver hands it over: plain JSON-safe values (text, numbers, booleans, null, objects). */
export type SourceRow = Record<string, unknown>;

/** A value convey binds into a query; the dialect decides how it is written. */
export type Param =
  | { type: 'instant'; value: string }
  | { type: 'text'; value: string }
  | { type: 'integer'; value: number }
  /** A conversion_id read back from the source, compared with that column: it takes the column's type. */
  | { type: 'key'; value: string }
  | { type: 'text list'; value: readonly string[] };

/** A pure SQL builder for one engine: unit-testable without a database. */
export interface Dialect {
  /** How comments, strings and quoted names are written, so :name inside them is left alone. */
  readonly lexer: SqlLexer;
  /** An identifier, quoted (convey only quotes names the schema allows: letters, digits, _). */
  quoteIdent(name: string): string;
  /**
   * The placeholder(s) for one bound value, given how many values are bound before it, and the
   * values to bind. A value is always typed in SQL: an untyped parameter takes its type from where
   * it stands (`:window_start - interval '1 day'` would read it as an interval).
   */
  placeholder(param: Param, position: number): { sql: string; values: unknown[] };
  /** SQL giving the instant `expr` (timestamp with or without zone, or date) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, truncated, never rounded, to microseconds. */
  instantText(expr: string): string;
  /** SQL that compares `expr` as text with a 'text list' placeholder: `expr` is one of them. */
  textIn(expr: string, list: string): string;
  /**
   * The sort key for conversion_id after the cursor: it must give a total order in which equal
   * keys are equal texts, or resuming after an interruption could skip or repeat a row (MySQL's
   * default collation says 'A1' = 'a1').
   */
  idOrder(expr: string): string;
}

export interface SourceCapabilities {
  /**
   * 'server': the engine runs elsewhere; a result left open holds a snapshot or a session there
   * (so a window waiting for a slow sender is spooled), and the connection can be lost mid-read.
   * 'in-process': it runs inside convey, and an open result costs nobody else anything.
   */
  readonly location: 'server' | 'in-process';
  /** A running statement can be stopped (a signal, statementTimeoutMs). PGlite runs its queries on convey's own thread: it cannot. */
  readonly cancel: boolean;
}

/** How a driver error is to be read: whose fault it is, and whether a read can resume. */
export type ErrorKind =
  /** The job's SQL is wrong (syntax, unknown table or column or function, no files match): exit 2. */
  | 'mapping'
  /** The source cannot be reached or refused the connection (address, credentials, missing file): exit 3. */
  | 'unreachable'
  /** The connection dropped while a statement ran: the read may resume on a new connection. */
  | 'connection-lost'
  /** The statement ran longer than the source's statementTimeoutMs. */
  | 'timeout'
  | 'other';

export interface StreamOptions {
  /** Rows per round trip to the engine (the job's pageSize). */
  fetchRows: number;
  /** Stops the statement: the engine is told to cancel where it can, and the stream ends. */
  signal?: AbortSignal;
}

/** An open connection (or pool) to one engine. SQL arrives already bound in this engine's syntax. */
export interface Driver {
  readonly dialect: Dialect;
  readonly capabilities: SourceCapabilities;
  /** The columns a statement returns; the caller makes it cheap (limit 0), an engine may not even run it. */
  columns(text: string, values: unknown[]): Promise<string[]>;
  /** One statement, its rows handed over in chunks as the engine produces them; memory holds one chunk. */
  stream(text: string, values: unknown[], options: StreamOptions): AsyncIterable<SourceRow[]>;
  /** A statement with a small result (fixtures, the demo's seed, catalogue lookups). */
  execute(text: string, values: unknown[]): Promise<{ rows: SourceRow[]; columns: string[] }>;
  classify(error: unknown): ErrorKind;
  /** How to fix an error, where the engine knows better than the general hint for its kind. */
  hint?(error: unknown): string | undefined;
  close(): Promise<void>;
}
