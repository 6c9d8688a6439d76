import { appendFileSync } from 'node:fs';
import type { ConveyError } from '../errors.ts';
import { command } from './github-actions.ts';

/**
 * A command can fail before there is a run for the channels to report: a job file that does not
 * load, a state store that is down, a usage error. On GitHub Actions that was a red step and a
 * log line; the job page (annotations, step summary) said nothing. This reports such an error
 * there. An error a run's own notifications already reported (executeOnStore) is marked, so it
 * is not reported twice.
 */
const reported = new WeakSet<object>();

export function markReported(error: unknown): void {
  if (typeof error === 'object' && error !== null) reported.add(error);
}

export function reportCommandFailure(
  thrown: unknown,
  error: ConveyError,
  exitCode: number,
  deps: { env: NodeJS.ProcessEnv; stderr: { write(text: string): unknown }; warn(message: string): void },
  job?: string,
): void {
  if (typeof thrown === 'object' && thrown !== null && reported.has(thrown)) return;
  const title = `convey${job ? ` (${job})` : ''} failed (exit ${exitCode}): ${error.code}`;
  if (deps.env.GITHUB_ACTIONS === 'true') deps.stderr.write(command('error', { title }, [error.message, error.hint].filter(Boolean).join('\n')) + '\n');
  const stepSummary = deps.env.GITHUB_STEP_SUMMARY;
  if (!stepSummary) return;
  try {
    appendFileSync(stepSummary, `### ❌ ${title}\n\n${error.message}\n\n${error.hint ? `${error.hint}\n\n` : ''}`);
  } catch (cause) {
    // Telling is never worth a different exit code: the error itself is already on stderr.
    deps.warn(`could not write the GitHub step summary (${stepSummary}): ${(cause as Error).message}`);
  }
}
