/**
 * Turns `:name` parameters into PostgreSQL's `$n`, reading the SQL the way PostgreSQL does: a
 * `:name` inside a comment, a string, a quoted identifier or a dollar-quoted body is text, not a
 * parameter, and `::type` is a cast. knex's own named bindings replace inside comments too (a
 * job's explanatory comment mentioning :window_start broke the query), and its `?` placeholders
 * collide with jsonb's `?` operator, so source queries are bound here and sent as they are.
 */
export interface BoundQuery {
  text: string;
  values: unknown[];
  /** Parameter names in order of first use. */
  names: string[];
}

export class UnknownParameterError extends Error {
  constructor(readonly parameter: string) {
    super(`:${parameter} is not a parameter convey binds`);
  }
}

const IDENT_START = /[A-Za-z_]/;
const IDENT = /[A-Za-z0-9_]/;

/**
 * `types` gives a parameter a type (`$1::timestamptz`): an untyped parameter takes its type from
 * where it stands, so `:window_start - interval '1 day'` would be read as an interval and a
 * `date` or text cursor would compare the window's bounds as a date or as text.
 */
export function bindNamed(
  sql: string,
  params: Readonly<Record<string, unknown>>,
  types: Readonly<Record<string, string>> = {},
): BoundQuery {
  const names: string[] = [];
  const values: unknown[] = [];
  let text = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const ch = sql[i]!;
    const next = sql[i + 1];
    const quoted = quotedEnd(sql, i);
    if (quoted) {
      text += sql.slice(i, quoted.end);
      i = quoted.end;
      continue;
    }
    if (ch === ':') {
      // ::cast
      if (next === ':') {
        text += '::';
        i += 2;
        continue;
      }
      if (next !== undefined && IDENT_START.test(next) && sql[i - 1] !== ':') {
        let j = i + 1;
        while (j < n && IDENT.test(sql[j]!)) j++;
        const name = sql.slice(i + 1, j);
        if (!Object.prototype.hasOwnProperty.call(params, name)) throw new UnknownParameterError(name);
        let index = names.indexOf(name);
        if (index === -1) {
          names.push(name);
          values.push(params[name]);
          index = names.length - 1;
        }
        const type = Object.prototype.hasOwnProperty.call(types, name) ? types[name] : undefined;
        text += type ? `$${index + 1}::${type}` : `$${index + 1}`;
        i = j;
        continue;
      }
    }
    text += ch;
    i++;
  }
  return { text, values, names };
}

/**
 * Where a comment, a 'string', a "quoted name" or a $tag$ body starting at `i` ends (exclusive),
 * read the way PostgreSQL reads them; undefined when none starts there.
 */
function quotedEnd(sql: string, i: number): { end: number; comment: boolean } | undefined {
  const n = sql.length;
  const ch = sql[i]!;
  const next = sql[i + 1];
  // -- line comment
  if (ch === '-' && next === '-') {
    const end = sql.indexOf('\n', i);
    return { end: end === -1 ? n : end, comment: true };
  }
  // /* block comment */, nested as PostgreSQL allows
  if (ch === '/' && next === '*') {
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
  // 'string' ('' escapes; E'..' also \ escapes) and "identifier" ("" escapes)
  if (ch === "'" || ch === '"') {
    const backslashes = ch === "'" && i > 0 && /[eE]/.test(sql[i - 1]!) && !IDENT.test(sql[i - 2] ?? ' ');
    let j = i + 1;
    while (j < n) {
      if (backslashes && sql[j] === '\\') j += 2;
      else if (sql[j] === ch && sql[j + 1] === ch) j += 2;
      else if (sql[j] === ch) break;
      else j++;
    }
    return { end: Math.min(j + 1, n), comment: false };
  }
  // $tag$ dollar-quoted body $tag$
  if (ch === '$' && !IDENT.test(sql[i - 1] ?? ' ')) {
    const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
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
export function statementBody(sql: string): string {
  let last = 0;
  let i = 0;
  while (i < sql.length) {
    const quoted = quotedEnd(sql, i);
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
