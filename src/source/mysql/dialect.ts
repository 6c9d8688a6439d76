import type { Dialect } from '../driver.ts';
import { MYSQL_LEXER } from '../sql-text.ts';

/**
 * MySQL's and MariaDB's SQL. Values are `?` (one per occurrence). An instant is bound as UTC text
 * without a zone and cast to DATETIME(6): compared with a TIMESTAMP column it is converted through
 * the session's zone, which convey sets to UTC, and a DATETIME column is read as UTC.
 */
export const mysqlDialect: Dialect = {
  lexer: MYSQL_LEXER,
  quoteIdent: (name) => `\`${name.replaceAll('`', '``')}\``,
  placeholder(param) {
    switch (param.type) {
      case 'instant':
        return { sql: 'cast(? as datetime(6))', values: [`${param.value.slice(0, 10)} ${param.value.slice(11, 26)}`] };
      case 'integer':
      case 'text':
      case 'key':
        return { sql: '?', values: [param.value] };
      case 'text list':
        return { sql: param.value.map(() => '?').join(', ') || 'null', values: [...param.value] };
    }
  },
  instantText: (expr) => `date_format(${expr}, '%Y-%m-%dT%H:%i:%s.%fZ')`,
  // Binary: the default collation compares 'A1' and 'a1' as equal.
  textIn: (expr, list) => `cast(${expr} as binary) in (${list})`,
  idOrder: (expr) => `cast(${expr} as binary)`,
};
