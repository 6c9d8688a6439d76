import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ConveyError } from '../../errors.ts';
import { runJob } from '../../pipeline/run-job.ts';
import { ndjsonTransport } from '../../pipeline/transport.ts';
import { incrementalWindow } from '../../pipeline/window.ts';
import { readWatermark } from '../../state/sql/watermarks.ts';
import { systemClock } from '../../time/clock.ts';
import { selectJobs } from '../../config/select.ts';
import { failOnOption, nonNegativeInteger, positiveInteger, projectFrom, resolveJob, selectionFrom, withProjectOption, withSelectionOptions, withSource, withStateReadOnly, type CommonFlags, type SelectionFlags } from '../context.ts';
import { runMany } from '../run-many.ts';
import { executeCommand } from '../execute.ts';
import type { CliIO } from '../io.ts';
import type { WarningCheck } from '../../verdict/warning.ts';
import { planJob } from './plan.ts';

interface RunFlags extends CommonFlags, SelectionFlags {
  dryRun?: boolean;
  out?: string;
  maxRejects?: number;
  parallel: number;
  failOn?: Set<WarningCheck>;
}

export const SELECTION_HELP = `Several jobs: names and globs (convey run orders 'refunds-*'), --select tag:nightly (the "tags" of
the job settings), --all; --exclude the same forms. Each job runs on its own (one job's failure never
stops the others); a job another runner holds is skipped, not exit 75. One summary, and the worst
exit code of them all (a stop by a signal first, then 70, 4, 3, 2, 1).`;

export const EXIT_CODES_HELP =
  '\nExit codes: 0 done; 1 conversions failed (sent first by the next run) or more rejects than --max-rejects;\n2 bad config or mapping (nothing sent); 3 source error; 4 state store error; 5 succeeded with a warning\n--fail-on names; 75 another run holds the job (nothing sent); 130/143 stopped by SIGINT/SIGTERM\n(in-flight requests finished and recorded).';

export function runCommand(io: CliIO): Command {
  return withProjectOption(
    withSelectionOptions(new Command('run'))
      .description('Send the conversions that are new since the last run: [watermark − lookback, now − settle).')
      .argument('[jobs...]', 'job names (jobs/<job>.sql and jobs/<job>.json) or globs; or --all, --select')
      .addOption(new Option('--parallel <n>', 'with several jobs: how many run at once in this process').default(1).argParser(positiveInteger('--parallel')))
      .option('--dry-run', 'send and record nothing; write each request it would send as NDJSON (method, url, body)')
      .option('--out <file>', 'with --dry-run: write the NDJSON here instead of stdout')
      .option('--json', 'print the summary as one JSON object on stdout')
      .addOption(new Option('--max-rejects <n>', 'end as failed (exit 1) when more rows than this are rejected').argParser(nonNegativeInteger('--max-rejects')))
      .addOption(failOnOption())
      .addHelpText('after', `${EXIT_CODES_HELP}\n\n${SELECTION_HELP}`),
  ).action(async (args: string[], flags: RunFlags) => {
    const project = projectFrom(io, flags);
    const { many, selection } = selectionFrom(args, flags);
    const options = flags.maxRejects === undefined ? {} : { maxRejects: flags.maxRejects };
    if (many) {
      if (flags.dryRun) throw new ConveyError('USAGE', '--dry-run takes one job', { hint: 'Use convey plan with the same selection to see what several jobs would send.' });
      const names = selectJobs(project, selection);
      await runMany(io, project, names, { json: flags.json, parallel: flags.parallel, command: 'convey run', failOn: flags.failOn }, () => (deps) => runJob(deps, options));
      return;
    }
    const name = selection.include[0]!;
    const target = resolveJob(project, name);
    const { job } = target;
    if (flags.out && !flags.dryRun) throw new ConveyError('USAGE', '--out only goes with --dry-run', { hint: 'For a file of requests that are also recorded, use a "file" destination.' });

    if (flags.dryRun) {
      // Reads and checks exactly like a run and compares with the ledger; writes nothing.
      await withStateReadOnly(io, project, `convey run ${name} --dry-run`, (store) =>
        withSource(job, `convey run ${name} --dry-run`, async (source) => {
          const window = incrementalWindow(job, store ? await readWatermark(store.db, job.name) : undefined, systemClock.now());
          const out = ndjsonTransport(flags.out ? resolve(io.cwd, flags.out) : io.stdout);
          try {
            const plan = await planJob({ state: store?.db, source, destination: target.resolved.destination, job, signal: io.signal, out }, window, 0);
            io.logger.info(`dry run: would send ${plan.wouldSend} conversions in ${plan.requests} requests; ${plan.alreadySent} already sent, ${plan.wouldReject} would be rejected`, { job: job.name });
          } finally {
            await out.close();
          }
        }),
      );
      return;
    }
    await executeCommand(io, project, target, { json: flags.json, failOn: flags.failOn, command: `convey run ${name}`, mode: 'run', needsSource: true, progressLabel: `run ${name}` }, (deps) => runJob(deps, options));
  });
}
