import { join } from 'node:path';
import type { JobConfig, Project } from '../config/project.ts';
import type { Destination } from '../destinations/destination.ts';
import { ConveyError } from '../errors.ts';
import { systemClock } from '../time/clock.ts';
import { loadReviewEngine, type FixtureSession } from '../source/review.ts';
import { runMappingTests, type TestOutcome } from './run-tests.ts';
import type { MappingTest, TestsFile } from './tests-file.ts';

export interface TestsRun {
  file: string;
  /** Where the SQL ran: the embedded engine of the job's dialect, or the source itself. */
  engine: string;
  outcomes: TestOutcome[];
  passed: number;
  failed: number;
}

/**
 * Runs a job's mapping tests on the embedded engine of its source's dialect (or, `onSource`, on
 * the source itself, in temporary tables rolled back), opening and closing the session.
 */
export async function runJobTests(
  project: Project,
  job: JobConfig,
  destination: Destination,
  tests: TestsFile,
  options: { onSource?: boolean; only?: (test: MappingTest) => boolean } = {},
): Promise<TestsRun> {
  const engine = await loadReviewEngine(job.source);
  let session: FixtureSession;
  const onSource = options.onSource || !engine.embedded;
  if (onSource) {
    const opened = engine.onSource(job.source);
    if (!opened) throw new ConveyError('USAGE', `--on-source: source "${job.source.name}" cannot hold fixture tables in a transaction that is rolled back`, { hint: 'Run the tests on the embedded engine (without --on-source).' });
    session = await opened;
  } else session = await engine.embedded!({ cacheDir: project.env.CONVEY_CACHE_DIR || join(project.dir, '.convey', 'cache'), projectDir: project.dir });
  try {
    const outcomes = await runMappingTests(session, engine, job, destination, tests, systemClock, options.only);
    const failed = outcomes.filter((o) => !o.passed).length;
    const where = !engine.embedded ? `source "${job.source.name}" (temporary tables, dropped; ${engine.embeddedLabel} has no embedded engine)` : onSource ? `source "${job.source.name}" (temporary tables, rolled back)` : engine.embeddedLabel;
    return { file: tests.file, engine: where, outcomes, passed: outcomes.length - failed, failed };
  } finally {
    await session.close();
  }
}

/** The lines a person reads: a mark per test, and per failing test one line per difference. */
export function formatTests(run: TestsRun): string {
  const lines = [`${run.file}: ${run.outcomes.length} test(s) on ${run.engine}`];
  for (const o of run.outcomes) {
    lines.push(`  ${o.passed ? '✓' : '✗'} ${o.name}`);
    for (const f of o.failures) lines.push(...f.split('\n').map((l) => `      ${l}`));
  }
  lines.push(`${run.outcomes.length} test(s): ${run.passed} passed, ${run.failed} failed`);
  return lines.join('\n') + '\n';
}
