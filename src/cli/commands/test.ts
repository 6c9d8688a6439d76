import { Command, Option } from 'commander';
import { ConveyError } from '../../errors.ts';
import { formatTests, runJobTests } from '../../mapping-tests/job-tests.ts';
import { withRecorded } from '../../mapping-tests/run-tests.ts';
import { sampleTest } from '../../mapping-tests/sample.ts';
import { loadTestsFile, parseTests, testsFileOf, writeTestsFile } from '../../mapping-tests/tests-file.ts';
import { loadReviewEngine } from '../../source/review.ts';
import { join } from 'node:path';
import { nonNegativeInteger, projectFrom, resolveJob, withProjectOption, withSource, type CommonFlags } from '../context.ts';
import { ExitCode } from '../exit-codes.ts';
import type { CliIO } from '../io.ts';

interface TestFlags extends CommonFlags {
  record?: boolean;
  sample?: number;
  table: string[];
  onSource?: boolean;
}

export function testCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('test')
      .description("Run a job's mapping tests (jobs/<job>.tests.json): fixture rows through the job's SQL and the same checks and encoding as a run, on an embedded database; nothing is sent.")
      .argument('<job>', 'job name')
      .option('--record', 'write what the mapping does as the expectations of every test (review the diff)')
      .addOption(new Option('--sample <n>', 'add a test made of n real rows of each table (people-identifying values replaced), with its expectations recorded').argParser(nonNegativeInteger('--sample')))
      .addOption(new Option('--table <schema.table>', 'with --sample: a table to sample (repeatable; default: the tables the tests file declares)').default([]).argParser((v: string, list: string[]) => [...list, v]))
      .option('--on-source', "run on the job's real source instead, in temporary tables inside a transaction that is rolled back")
      .option('--json', 'print { file, engine, outcomes: [{ name, passed, failures }], passed, failed }')
      .addHelpText('after', '\nExit code: 0 when every test passes, 1 when one fails, 2 when the tests file or the job is invalid.'),
  ).action(async (name: string, flags: TestFlags) => {
    const project = projectFrom(io, flags);
    const { job, resolved } = resolveJob(project, name);
    let tests = loadTestsFile(project.dir, name);
    let only: ((test: { name: string }) => boolean) | undefined;
    if (flags.sample !== undefined) {
      const tables = flags.table.length ? flags.table : tests ? [...tests.tables.keys()] : [];
      if (!tables.length) throw new ConveyError('USAGE', `--sample needs the tables to read: name them with --table, or declare them in ${testsFileOf(name)}`, { hint: `e.g. convey test ${name} --sample 20 --table analytics.orders` });
      const testName = `sample of ${flags.sample} rows (${new Date().toISOString().slice(0, 10)})`;
      const document = await withSource(job, `convey test ${name} --sample`, async (source) => sampleTest(source, await loadReviewEngine(job.source), tables, flags.sample!, tests?.document, testName));
      const path = join(project.dir, testsFileOf(name));
      tests = parseTests(testsFileOf(name), path, document);
      writeTestsFile(tests, document);
      only = (test) => test.name === testName;
    }
    if (!tests) {
      throw new ConveyError('CONFIG_INVALID', `${testsFileOf(name)} does not exist`, {
        hint: `Start one from real rows with convey test ${name} --sample 20 --table <schema.table>, or write it (schema/tests.schema.json describes it).`,
      });
    }
    let run = await runJobTests(project, job, resolved.destination, tests, { ...(flags.onSource ? { onSource: true } : {}), ...(only ? { only } : {}) });
    if (flags.record || only) {
      writeTestsFile(tests, withRecorded(tests.document, run.outcomes));
      io.logger.info(`${tests.file}: expectations recorded for ${run.outcomes.filter((o) => o.actual).length} test(s); review them in the diff`);
      // What was recorded now holds; a test whose SQL did not run keeps its failure.
      const outcomes = run.outcomes.map((o) => (o.actual ? { ...o, passed: true, failures: [] } : o));
      const failed = outcomes.filter((o) => !o.passed).length;
      run = { ...run, outcomes, passed: outcomes.length - failed, failed };
    }
    io.stdout.write(flags.json ? JSON.stringify({ ...run, outcomes: run.outcomes.map(({ actual: _actual, ...o }) => o) }) + '\n' : formatTests(run));
    if (run.failed) io.setExitCode(ExitCode.FAILED);
  });
}
