import type { Dialect } from '../driver.ts';
import { POSTGRES_LEXER } from '../sql-text.ts';

/**
 * PostgreSQL's SQL (and PGlite's: the same engine). Values are `$n` with a cast: an untyped
 * parameter takes its type from where it stands, so `:window_start - interval '1 day'` would be
 * read as an interval and a `date` cursor would cut the window's bounds down to dates.
 */
export const postgresDialect: Dialect = {
  lexer: POSTGRES_LEXER,
  quoteIdent: (name) => `"${name.replaceAll('"', '""')}"`,
  placeholder(param, position) {
    const n = `$${position + 1}`;
    switch (param.type) {
      case 'instant':
        return { sql: `${n}::timestamptz`, values: [param.value] };
      case 'integer':
        return { sql: `${n}::bigint`, values: [param.value] };
      case 'text':
        return { sql: `${n}::text`, values: [param.value] };
      case 'key':
        // Takes the type of the conversion_id it is compared with (text, integer, uuid…).
        return { sql: n, values: [param.value] };
      case 'text list':
        return { sql: `${n}::text[]`, values: [param.value] };
    }
  },
  // timestamptz `at time zone 'UTC'` is the UTC wall clock; a timestamp without zone is read as UTC
  // and printed in the session's zone, which convey sets to UTC; a date is its midnight.
  instantText: (expr) => `to_char(${expr} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
  textIn: (expr, list) => `${expr}::text = any(${list})`,
  idOrder: (expr) => expr,
};
