import { execFile } from 'node:child_process';
import { ConveyError } from '../errors.ts';

/** The text of a job's two files at a git ref, or undefined when the job does not exist there (a new job). */
export interface JobAtRef {
  settings: string;
  sql: string;
}

/**
 * Reads `jobs/<name>.json` and `.sql` as they are at `ref` (`git show <ref>:./jobs/<name>.sql`),
 * relative to the project folder, which may be anywhere inside the repository. Only these two
 * files: the config/ of the working tree applies to both sides, so a compare never reads a
 * source the head does not.
 */
export async function jobAtRef(projectDir: string, ref: string, name: string): Promise<JobAtRef | undefined> {
  await git(projectDir, ['rev-parse', '--is-inside-work-tree']).catch(() => {
    throw new ConveyError('USAGE', `--compare ${ref}: ${projectDir} is not in a git repository`, {
      hint: 'plan --compare reads the job at a git ref: run it in the repository that holds jobs/ (git init and commit them first).',
    });
  });
  await git(projectDir, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]).catch(() => {
    throw new ConveyError('USAGE', `--compare ${ref}: git knows no such commit in ${projectDir}`, {
      hint: 'Name a branch, tag or commit (e.g. --compare origin/main); in CI, fetch it first: git fetch --depth=1 origin main.',
    });
  });
  const [settings, sql] = await Promise.all([show(projectDir, ref, `jobs/${name}.json`), show(projectDir, ref, `jobs/${name}.sql`)]);
  if (settings === undefined || sql === undefined) return undefined;
  return { settings, sql };
}

async function show(dir: string, ref: string, path: string): Promise<string | undefined> {
  try {
    return await git(dir, ['show', `${ref}:./${path}`]);
  } catch (error) {
    // "does not exist in" / "exists on disk, but not in": the file is new on this side.
    if (/does not exist|not in '|exists on disk/.test(String((error as { stderr?: string }).stderr ?? ''))) return undefined;
    throw error;
  }
}

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new ConveyError('USAGE', 'plan --compare needs git, which is not installed here', { hint: 'Install git, or run plan without --compare.' }));
      }
      reject(Object.assign(error, { stderr }));
    });
  });
}
