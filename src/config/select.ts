import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConveyError } from '../errors.ts';
import { didYouMean } from './did-you-mean.ts';
import { listJobNames, type Project } from './project.ts';

/**
 * Which jobs a command works on, dbt style: job names and globs (`orders-*`), `tag:<tag>` for the
 * jobs whose settings list that tag, everything with `--all`; `--exclude` takes the same forms.
 */
export interface Selection {
  /** Names, globs or tag:… given as arguments or with --select. */
  include: string[];
  exclude: string[];
  all: boolean;
}

/**
 * Whether the command names more than one job (or might): then each job's outcome is reported on
 * its own line and a job held by another runner is skipped, not a failure of the command.
 */
export const isSelection = (s: Selection & { viaFlag: boolean }): boolean =>
  s.all || s.viaFlag || s.exclude.length > 0 || s.include.length !== 1 || isPattern(s.include[0]!);

const isPattern = (spec: string): boolean => spec.startsWith('tag:') || /[*?[]/.test(spec);

/**
 * The selected jobs, in name order. A job whose settings cannot be read is kept whenever it could
 * be meant (its tags are unknown): it then fails on its own, with the file and the fix, instead of
 * being left out of the night's work without a word. A name or pattern that matches nothing is an
 * error, so a typo is not a quiet "nothing to do".
 */
export function selectJobs(project: Project, selection: Selection): string[] {
  if (!selection.all && selection.include.length === 0) {
    throw new ConveyError('USAGE', 'no job selected', { hint: 'Name jobs (orders refunds, or a glob: orders-*), --select tag:nightly, or --all.' });
  }
  const names = listJobNames(project);
  const tags = new Map(names.map((name) => [name, readTags(project, name)]));
  const matches = (spec: string, name: string): boolean => {
    if (spec.startsWith('tag:')) {
      const wanted = spec.slice(4);
      const own = tags.get(name);
      return own === undefined || own.includes(wanted);
    }
    return globRegExp(spec).test(name);
  };
  for (const spec of [...selection.include, ...selection.exclude]) {
    if (spec.startsWith('tag:') || names.some((name) => matches(spec, name))) continue;
    const guess = didYouMean(spec, names);
    throw new ConveyError('CONFIG_INVALID', `"${spec}" matches no job in jobs/`, {
      hint: guess ? `Did you mean "${guess}"?` : names.length ? `Known jobs: ${names.join(', ')}.` : 'No job is defined in jobs/ yet.',
    });
  }
  const excluded = (name: string): boolean =>
    // An unreadable job is excluded only by its name: its tags are unknown.
    selection.exclude.some((spec) => (spec.startsWith('tag:') ? tags.get(name)?.includes(spec.slice(4)) === true : globRegExp(spec).test(name)));
  return names.filter((name) => (selection.all || selection.include.some((spec) => matches(spec, name))) && !excluded(name));
}

/** The `tags` of a job's settings, or undefined when the file cannot be read as JSON with a list of tags. */
function readTags(project: Project, name: string): string[] | undefined {
  const file = join(project.dir, 'jobs', `${name}.json`);
  if (!existsSync(file)) return undefined;
  try {
    const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
    const tags = (JSON.parse(text) as { tags?: unknown }).tags;
    if (tags === undefined) return [];
    return Array.isArray(tags) && tags.every((t) => typeof t === 'string') ? tags : undefined;
  } catch {
    return undefined;
  }
}

/** `*` any run of characters, `?` one character; anything else literal. Job names have no `/`. */
function globRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}
