import { ConveyError } from '../errors.ts';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/**
 * Replaces `${NAME}` and `${NAME:-default}` in every string of a parsed JSON value. Secrets live
 * only in the environment; the files in the repository name them. `where` names the file for the
 * error message; the key path is built on the way down.
 */
export function interpolate(value: unknown, env: NodeJS.ProcessEnv, where: string, path = ''): unknown {
  if (typeof value === 'string') return interpolateString(value, env, where, path);
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, where, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, where, path ? `${path}.${k}` : k)]),
    );
  }
  return value;
}

/**
 * A scanner rather than a regular expression: a default may hold a reference of its own
 * (`${WAREHOUSE_URL:-${DATABASE_URL}}`), read only when the default is used, and a `${` that is
 * no reference convey reads is an error rather than text sent on as it is (a connection string
 * ending in a stray `}`, or a literal `${A-x}`).
 */
function interpolateString(text: string, env: NodeJS.ProcessEnv, where: string, path: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const open = text.indexOf('${', i);
    if (open < 0) return out + text.slice(i);
    out += text.slice(i, open);
    const name = NAME.exec(text.slice(open + 2))?.[0];
    const after = open + 2 + (name?.length ?? 0);
    if (name && text[after] === '}') {
      out += lookup(name, undefined);
      i = after + 1;
      continue;
    }
    if (name && text.startsWith(':-', after)) {
      // The default ends at the brace that closes this reference: nested `${` open one more.
      let depth = 0;
      let end = after + 2;
      for (; end < text.length; end++) {
        if (text.startsWith('${', end)) {
          depth++;
          end++;
        } else if (text[end] === '}') {
          if (depth === 0) break;
          depth--;
        }
      }
      if (end < text.length) {
        out += lookup(name, text.slice(after + 2, end));
        i = end + 1;
        continue;
      }
    }
    const shown = text.slice(open, Math.min(text.length, open + 40));
    throw new ConveyError('CONFIG_INVALID', `${where}: ${path} has ${JSON.stringify(shown)}, which is not a reference convey reads: write \${NAME} or \${NAME:-default}`, {
      hint: 'A name is letters, digits and _, not starting with a digit; a default follows ":-" and ends at the closing "}".',
    });
  }

  function lookup(name: string, fallback: string | undefined): string {
    const found = env[name];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return interpolateString(fallback, env, where, path);
    throw new ConveyError('CONFIG_INVALID', `${where}: ${path} reads \${${name}}, which is not set`, {
      hint: `Set ${name} in the environment, or give a default: \${${name}:-value}.`,
    });
  }
}
