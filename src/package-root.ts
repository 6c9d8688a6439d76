import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder holding convey's package.json. Code runs from src/ (tsx, tests) and from dist/src/
 * (the built CLI), so shipped files (schema/, jobs/ examples) are found by walking up, not by a
 * fixed number of `..`.
 */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('convey: cannot find its package.json');
    dir = parent;
  }
  return dir;
})();

export const conveyVersion: string = (
  JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }
).version;
