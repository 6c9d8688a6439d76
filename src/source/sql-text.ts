import type { Dialect, Param } from './driver.ts';

/**
 * Reading a job's SQL the way its engine reads it: where comments, strings and quoted names are,
 * so that a `:name` inside them is text, not a parameter. Engines differ: MySQL quotes strings
 * with " too, escapes with backslashes, quotes names with backticks and starts comments with #;
 * PostgreSQL (and DuckDB, whose parser comes from it) nests block comments and has $tag$ bodies.
 */
export interface SqlLexer {
  /** Characters that open a string literal. */
  readonly stringQuotes: string;
  /** Characters that open a quoted identifier. */
  readonly identifierQuotes: string;
  /** Backslash escapes inside strings: always (MySQL), or only in E'…' strings (PostgreSQL). */
  readonly backslashEscapes: 'always' | 'E-prefix';
  readonly dollarQuotes: boolean;
  readonly nestedComments: boolean;
  /** `#` starts a line comment, and `--` does only before a space (MySQL). */
  readonly mysqlComments: boolean;
}

export const POSTGRES_LEXER: SqlLexer = {
  stringQuotes: "'",
  identifierQuotes: '"',
  backslashEscapes: 'E-prefix',
  dollarQuotes: true,
  nestedComments: true,
  mysqlComments: false,
};

export const MYSQL_LEXER: SqlLexer = {
  stringQuotes: `'"`,
  identifierQuotes: '`',
  backslashEscapes: 'always',
  dollarQuotes: false,
  nestedComments: false,
  mysqlComments: true,
};

export interface BoundQuery {
  text: string;
  values: unknown[];
}

export class UnknownParameterError extends Error {
  constructor(readonly parameter: string) {
    super(`:${parameter} is not a parameter convey binds`);
  }
}

const IDENT_START = /[A-Za-z_]/;
const IDENT = /[A-Za-z0-9_]/;

/**
 * Replaces each `:name` with the dialect's placeholder for that value. Each occurrence is bound
 * on its own (MySQL's `?` cannot be reused), and every value is typed in the SQL. `::type` casts
 * are left alone. knex's named bindings replaced inside comments too (a job's explanatory comment
 * mentioning :window_start broke the query), so source queries are bound here.
 */
export function bindNamed(sql: string, params: Readonly<Record<string, Param>>, dialect: Pick<Dialect, 'lexer' | 'placeholder'>): BoundQuery {
  const values: unknown[] = [];
  const text = replaceParameters(sql, dialect.lexer, (name) => {
    if (!Object.prototype.hasOwnProperty.call(params, name)) throw new UnknownParameterError(name);
    const placed = dialect.placeholder(params[name]!, values.length);
    values.push(...placed.values);
    return placed.sql;
  });
  return { text, values };
}

/** The `:name` parameters a statement uses, outside comments and strings. */
export function parameterNames(sql: string, lexer: SqlLexer): string[] {
  const names = new Set<string>();
  replaceParameters(sql, lexer, (name) => {
    names.add(name);
    return '';
  });
  return [...names];
}

function replaceParameters(sql: string, lexer: SqlLexer, replace: (name: string) => string): string {
  let text = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const ch = sql[i]!;
    const quoted = quotedEnd(sql, i, lexer);
    if (quoted) {
      text += sql.slice(i, quoted.end);
      i = quoted.end;
      continue;
    }
    if (ch === ':') {
      const next = sql[i + 1];
      if (next === ':') {
        text += '::';
        i += 2;
        continue;
      }
      if (next !== undefined && IDENT_START.test(next) && sql[i - 1] !== ':') {
        let j = i + 1;
        while (j < n && IDENT.test(sql[j]!)) j++;
        text += replace(sql.slice(i + 1, j));
        i = j;
        continue;
      }
    }
    text += ch;
    i++;
  }
  return text;
}

/**
 * Where a comment, a string, a quoted name or a $tag$ body starting at `i` ends (exclusive);
 * undefined when none starts there.
 */
function quotedEnd(sql: string, i: number, lexer: SqlLexer): { end: number; comment: boolean } | undefined {
  const n = sql.length;
  const ch = sql[i]!;
  const next = sql[i + 1];
  // -- line comment (MySQL: only before white space; `a--1` is a minus minus)
  if ((ch === '-' && next === '-' && (!lexer.mysqlComments || /\s/.test(sql[i + 2] ?? ' '))) || (ch === '#' && lexer.mysqlComments)) {
    const end = sql.indexOf('\n', i);
    return { end: end === -1 ? n : end, comment: true };
  }
  if (ch === '/' && next === '*') {
    if (!lexer.nestedComments) {
      const end = sql.indexOf('*/', i + 2);
      return { end: end === -1 ? n : end + 2, comment: true };
    }
    let depth = 1;
    let j = i + 2;
    while (j < n && depth > 0) {
      if (sql[j] === '/' && sql[j + 1] === '*') {
        depth++;
        j += 2;
      } else if (sql[j] === '*' && sql[j + 1] === '/') {
        depth--;
        j += 2;
      } else j++;
    }
    return { end: j, comment: true };
  }
  const isString = lexer.stringQuotes.includes(ch);
  if (isString || lexer.identifierQuotes.includes(ch)) {
    // A doubled quote escapes itself everywhere; backslashes escape in MySQL strings and E'…'.
    const backslashes =
      isString && (lexer.backslashEscapes === 'always' || (i > 0 && /[eE]/.test(sql[i - 1]!) && !IDENT.test(sql[i - 2] ?? ' ')));
    let j = i + 1;
    while (j < n) {
      if (backslashes && sql[j] === '\\') j += 2;
      else if (sql[j] === ch && sql[j + 1] === ch) j += 2;
      else if (sql[j] === ch) break;
      else j++;
    }
    return { end: Math.min(j + 1, n), comment: false };
  }
  if (lexer.dollarQuotes && ch === '$' && !IDENT.test(sql[i - 1] ?? ' ')) {
    const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
    if (tag) {
      const end = sql.indexOf(tag[0], i + tag[0].length);
      return { end: end === -1 ? n : end + tag[0].length, comment: false };
    }
  }
  return undefined;
}

/**
 * The statement without what follows its last token: semicolons, comments and white space. convey
 * puts the job's SQL inside parentheses, where a `;` ends the statement early; a file ending in
 * `;` and a comment after it (`-- refunds are another job`) was a syntax error.
 */
export function statementBody(sql: string, lexer: SqlLexer): string {
  let last = 0;
  let i = 0;
  while (i < sql.length) {
    const quoted = quotedEnd(sql, i, lexer);
    if (quoted) {
      if (!quoted.comment) last = quoted.end;
      i = quoted.end;
      continue;
    }
    if (sql[i] !== ';' && !/\s/u.test(sql[i]!)) last = i + 1;
    i++;
  }
  return sql.slice(0, last);
}
