import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { loadJob, resolveSource } from '../../config/project.ts';
import { createDestination } from '../../destinations/index.ts';
import { ConveyError } from '../../errors.ts';
import { runJobTests } from '../../mapping-tests/job-tests.ts';
import { withRecorded } from '../../mapping-tests/run-tests.ts';
import { sampleTest } from '../../mapping-tests/sample.ts';
import { parseTests, testsFileOf, writeTestsFile } from '../../mapping-tests/tests-file.ts';
import { schemaRef } from '../../package-root.ts';
import { guessMapping, mappingSql, type MappingGuess } from '../../scaffold/guess-mapping.ts';
import { openSource } from '../../source/open.ts';
import { loadReviewEngine } from '../../source/review.ts';
import { addMicros, fromEpochMillis } from '../../time/instant.ts';
import { projectFrom, withProjectOption, withStateReadOnly, type CommonFlags } from '../context.ts';
import type { CliIO } from '../io.ts';
import { formatPlan, planJob } from './plan.ts';

interface NewFlags extends CommonFlags {
  from: string;
  source: string;
  destination: 'events' | 'classic';
  accountId?: string;
  projectId?: string;
  force?: boolean;
}

const DAY_MICROS = 86_400_000_000n;
/** Rows of the table the first test is made of. */
const FIRST_TEST_ROWS = 5;

export function newCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('new')
      .description("Write a first job from a table: a SELECT with a line per convey column guessed from the table's columns, its settings (start = now), and a first test; then plan the last day.")
      .argument('<job>', 'job name (jobs/<job>.sql and .json)')
      .requiredOption('--from <schema.table>', 'the table the conversions are in')
      .option('--source <name>', 'the source in config/ that has the table', 'warehouse')
      .addOption(new Option('--destination <type>', 'events (Optimizely Event API) or classic').choices(['events', 'classic']).default('events'))
      .option('--account-id <id>', 'Optimizely account id (default: ${OPTIMIZELY_ACCOUNT_ID} from the environment)')
      .option('--project-id <id>', 'Optimizely project id (required for classic)')
      .option('--force', 'replace the job if it exists'),
  ).action(async (name: string, flags: NewFlags) => {
    const project = projectFrom(io, flags);
    const sqlFile = `jobs/${name}.sql`;
    const settingsFile = `jobs/${name}.json`;
    if (!flags.force && (existsSync(join(project.dir, sqlFile)) || existsSync(join(project.dir, settingsFile)))) {
      throw new ConveyError('CONFIG_INVALID', `job "${name}" exists (${sqlFile})`, { hint: 'Choose another name, or pass --force to replace it.' });
    }
    if (flags.destination === 'classic' && !flags.projectId) throw new ConveyError('USAGE', 'a classic job needs --project-id', { hint: `e.g. convey new ${name} --from ${flags.from} --destination classic --project-id 1234567` });
    const sourceConfig = resolveSource(project, flags.source, '--source');
    const engine = await loadReviewEngine(sourceConfig);
    const out: string[] = [`convey new ${name} --from ${flags.from}`];
    const source = await openSource(sourceConfig, { command: `convey new ${name}` });
    try {
      const columns = await engine.describeTable(source, flags.from);
      if (!columns.length) {
        throw new ConveyError('USAGE', `source "${flags.source}" has no table ${flags.from}`, { hint: 'Name the table as schema.table (or as the search path finds it), and the source with --source.' });
      }
      const guess = guessMapping(columns);
      const confirmed = io.ask ? await confirmGuesses(io.ask, guess) : false;
      const jobSchema = (file: string): string => schemaRef(project.dir, join(project.dir, 'jobs'), file);
      // Now, not the table's first row: a new job must not send history by accident.
      const start = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
      mkdirSync(join(project.dir, 'jobs'), { recursive: true });
      writeFileSync(join(project.dir, sqlFile), mappingSql(flags.from, guess, confirmed));
      const destination =
        flags.destination === 'classic'
          ? { type: 'optimizely-classic', projectId: flags.projectId }
          : { type: 'optimizely-events', accountId: flags.accountId ?? '${OPTIMIZELY_ACCOUNT_ID}', ...(flags.projectId ? { projectId: flags.projectId } : {}) };
      const settings = { $schema: jobSchema('job.schema.json'), description: `Conversions from ${flags.from} (written by convey new: check the TODOs in ${sqlFile}).`, source: flags.source, destination, cursor: guess.cursor, start };
      writeFileSync(join(project.dir, settingsFile), JSON.stringify(settings, null, 2) + '\n');
      out.push(`  wrote ${sqlFile}${confirmed ? '' : ' (guesses marked TODO: check them)'} and ${settingsFile} (start ${start})`);
      if (guess.cursorColumn) {
        const indexed = await engine.leadsAnIndex(source, flags.from, guess.cursorColumn);
        if (indexed === false) {
          out.push(`  ⚠ ${flags.from}.${guess.cursorColumn}, the column the window is read on, starts no index: each run scans the table. Add one (create index on ${flags.from} (${guess.cursorColumn})) or a sort key.`);
        }
      }

      const job = loadJob(project, name);
      const resolved = createDestination(job.destination);
      // The last day, through the same checks as a run: what the job would have sent.
      const end = fromEpochMillis(Date.now());
      const window = { start: addMicros(end, -DAY_MICROS), end };
      const plan = await withStateReadOnly(io, project, `convey new ${name}`, (store) =>
        planJob({ state: store?.db, source, destination: resolved.destination, job, signal: io.signal }, window, 1),
      );
      out.push('', formatPlan(plan, resolved.destination).trimEnd());

      // A first test from a few real rows (people-identifying values replaced), its expectations recorded.
      const testName = `first ${FIRST_TEST_ROWS} rows of ${flags.from}`;
      const document = await sampleTest(source, engine, [flags.from], FIRST_TEST_ROWS, undefined, testName);
      document.$schema = jobSchema('tests.schema.json');
      const tests = parseTests(testsFileOf(name), join(project.dir, testsFileOf(name)), document);
      const run = await runJobTests(project, job, resolved.destination, tests);
      writeTestsFile(tests, withRecorded(document, run.outcomes));
      out.push('', `  wrote ${testsFileOf(name)}: "${testName}", with what the mapping does now as its expectations (convey test ${name})`);
      const from = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
      out.push(
        '',
        'Next:',
        `  check the SQL, then: convey test ${name} && convey plan ${name}`,
        `  to send history once the plan looks right: convey backfill ${name} --from ${from} --to ${start.slice(0, 10)}`,
        '',
      );
    } finally {
      await source.close();
    }
    io.stdout.write(out.join('\n'));
  });
}

/** On a terminal: each guess that assumed something is shown, and kept unless the answer is no. */
async function confirmGuesses(ask: (question: string) => Promise<string>, guess: MappingGuess): Promise<boolean> {
  for (const g of guess.guesses) {
    if (!g.expression || !g.assumption) continue;
    const answer = (await ask(`${g.target} ← ${g.expression}   (${g.assumption})  use it? [Y/n] `)).trim().toLowerCase();
    if (answer === 'n' || answer === 'no') {
      g.expression = undefined;
      g.assumption = undefined;
    }
  }
  return true;
}
