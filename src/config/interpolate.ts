import { ConveyError } from '../errors.ts';

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

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

function interpolateString(text: string, env: NodeJS.ProcessEnv, where: string, path: string): string {
  return text.replace(REFERENCE, (_match, name: string, fallback: string | undefined) => {
    const found = env[name];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    throw new ConveyError('CONFIG_INVALID', `${where}: ${path} reads \${${name}}, which is not set`, {
      hint: `Set ${name} in the environment, or give a default: \${${name}:-value}.`,
    });
  });
}
