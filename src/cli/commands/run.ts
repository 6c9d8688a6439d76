import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { planWindow } from '../../pipeline/plan-window.ts';
import { runJob, type RunSummary } from '../../pipeline/run-job.ts';
import { ndjsonTransport } from '../../pipeline/transport.ts';
import { incrementalWindow } from '../../pipeline/window.ts';
import { describeMapping } from '../../source/pages.ts';
import { readWatermark } from '../../state/sql/watermarks.ts';
import { mappingOf } from '../../pipeline/checked-batches.ts';
import { ConveyError } from '../../errors.ts';
import { systemClock } from '../../time/clock.ts';
import { createTransport, nonNegativeInteger, projectFrom, resolveJob, withProjectOption, withSource, withState, type CommonFlags } from '../context.ts';
import { exitCodeForStatus } from '../exit-codes.ts';
import type { CliIO } from '../io.ts';
import { formatSummary, ProgressLine } from '../output.ts';

interface RunFlags extends CommonFlags {
  dryRun?: boolean;
  out?: string;
  maxRejects?: number;
}

export function runCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('run')
      .description('Send the conversions that are new since the last run: [watermark − lookback, now − settle).')
      .argument('<job>', 'job name: jobs/<job>.sql and jobs/<job>.json')
      .option('--dry-run', 'send and record nothing; write each request it would send as NDJSON (method, url, body)')
      .option('--out <file>', 'with --dry-run: write the NDJSON here instead of stdout')
      .option('--json', 'print the summary as one JSON object on stdout')
      .addOption(new Option('--max-rejects <n>', 'end as failed (exit 1) when more rows than this are rejected').argParser(nonNegativeInteger('--max-rejects')))
      .addHelpText(
        'after',
        '\nExit codes: 0 done; 1 conversions failed or too many rejects; 2 bad config or mapping (nothing sent);\n3 source error; 4 state store error; 75 another run holds the job (nothing sent); 130/143 stopped by SIGINT/SIGTERM.',
      ),
  ).action(async (name: string, flags: RunFlags) => {
    const project = projectFrom(io, flags);
    const { job, resolved } = resolveJob(project, name);
    if (flags.out && !flags.dryRun) throw new ConveyError('USAGE', '--out only goes with --dry-run', { hint: 'For a file of requests that are also recorded, use a "file" destination.' });

    await withState(io, project, `convey run ${name}`, (store) =>
      withSource(job, `convey run ${name}`, async (source) => {
        if (flags.dryRun) {
          // Reads and checks exactly like a run, compares with the ledger, writes nothing.
          const window = incrementalWindow(job, await readWatermark(store.db, job.name), systemClock.now());
          const columns = await describeMapping(source, mappingOf(job), window);
          const problems = resolved.destination.checkColumns(columns);
          if (problems.length) throw new ConveyError('MAPPING_INVALID', problems.map((p) => `${job.sqlFile}: ${p}`).join('\n'));
          const out = ndjsonTransport(flags.out ? resolve(io.cwd, flags.out) : io.stdout);
          const plan = await planWindow({ state: store.db, source, destination: resolved.destination, job, signal: io.signal, out }, window, { samples: 0 });
          await out.close();
          io.logger.info(`dry run: would send ${plan.wouldSend} conversions in ${plan.requests} requests; ${plan.alreadySent} already sent, ${plan.wouldReject} would be rejected`, { job: job.name });
          return;
        }
        const transport = createTransport(io, job, resolved);
        const progress = io.isTTY && !flags.json ? new ProgressLine(io.stderr, `run ${job.name}`) : undefined;
        let summary: RunSummary;
        try {
          summary = await runJob(
            {
              db: store.db,
              source,
              destination: resolved.destination,
              transport,
              job,
              clock: systemClock,
              logger: io.logger.child({ job: job.name }),
              signal: io.signal,
              describeHolder: store.describeHolder,
              ...(progress ? { onProgress: (counts) => progress.update(counts) } : {}),
            },
            flags.maxRejects === undefined ? {} : { maxRejects: flags.maxRejects },
          );
          const stats = transport.stats?.();
          if (stats) summary.delivery = stats;
        } finally {
          progress?.done();
          await transport.close();
        }
        io.stdout.write(flags.json ? JSON.stringify(summary) + '\n' : formatSummary(summary));
        io.setExitCode(exitCodeForStatus(summary.status, io.signal.reason as NodeJS.Signals | undefined));
      }),
    );
  });
}
