import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
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

const manifest = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string; private?: boolean };

export const conveyVersion: string = manifest.version;

/** Whether convey is on the npm registry under its name. Until it is, `convey` there is an unrelated package. */
export const conveyPublished: boolean = !manifest.private;

/**
 * The `$schema` reference written into a jobs repository's files: through the repository's own
 * `node_modules/convey`, where `npm install` puts convey whatever the dependency names (a version,
 * a git URL, a tarball, a folder), so the path is the same on every machine that clones it. Before
 * that install (convey run from a checkout to lay the repository out) the same path is written:
 * it resolves once `npm install` has run.
 */
export function schemaRef(projectDir: string, fromDir: string, file: string): string {
  return relative(fromDir, join(projectDir, 'node_modules', 'convey', 'schema', file)).split('\\').join('/');
}
