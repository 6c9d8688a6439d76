import type { Dialect } from '../driver.ts';
import { POSTGRES_LEXER } from '../sql-text.ts';

/** DuckDB's SQL: its parser comes from PostgreSQL's, so strings, comments and `$n` are the same. */
export const duckdbDialect: Dialect = {
  lexer: POSTGRES_LEXER,
  quoteIdent: (name) => `"${name.replaceAll('"', '""')}"`,
  placeholder(param, position) {
    const n = `$${position + 1}`;
    switch (param.type) {
      case 'instant':
        return { sql: `${n}::TIMESTAMPTZ`, values: [param.value] };
      case 'integer':
        return { sql: `${n}::BIGINT`, values: [param.value] };
      case 'text':
        return { sql: `${n}::VARCHAR`, values: [param.value] };
      case 'key':
        return { sql: n, values: [param.value] };
      case 'text list':
        return {
          sql: param.value.map((_, i) => `$${position + 1 + i}::VARCHAR`).join(', ') || 'NULL',
          values: [...param.value],
        };
    }
  },
  // In a UTC session a TIMESTAMP (naive) is read as UTC, a DATE as its midnight; TIMESTAMP_NS is
  // truncated to microseconds by the cast (measured: .123456789 → .123456).
  instantText: (expr) => `strftime(CAST(${expr} AS TIMESTAMPTZ), '%Y-%m-%dT%H:%M:%S.%fZ')`,
  textIn: (expr, list) => `CAST(${expr} AS VARCHAR) IN (${list})`,
  idOrder: (expr) => expr,
};
