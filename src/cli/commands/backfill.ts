import { Command } from 'commander';
import { ConveyError } from '../../errors.ts';
import { backfillJob } from '../../pipeline/backfill.ts';
import { parseRange } from '../../pipeline/range.ts';
import { latestOpenBackfill } from '../../state/sql/backfills.ts';
import { failOnOption, projectFrom, resolveJob, withProjectOption, withStateReadOnly, type CommonFlags } from '../context.ts';
import { executeCommand } from '../execute.ts';
import type { CliIO } from '../io.ts';
import type { WarningCheck } from '../../verdict/warning.ts';
import { EXIT_CODES_HELP } from './run.ts';

interface BackfillFlags extends CommonFlags {
  from?: string;
  to?: string;
  tz?: string;
  chunk: string;
  resume?: boolean;
  resend?: boolean;
  group?: string;
  failOn?: Set<WarningCheck>;
}

export function backfillCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('backfill')
      .description('Send a date range again through the current mapping, in chunks, without moving the nightly watermark.')
      .argument('<job>', 'job name')
      .option('--from <date|time>', 'first day (or time) of the range, inclusive')
      .option('--to <date|time>', 'end of the range, EXCLUSIVE: --from 2026-03-01 --to 2026-04-01 is all of March')
      .option('--tz <zone>', "IANA zone in which dates are whole days (default: the job's timezone, else UTC)")
      .option('--chunk <duration>', 'ISO 8601 size of a chunk; each finished chunk is recorded', 'P1D')
      .option('--resume', "continue the job's last unfinished backfill (the same command again resumes too)")
      .option('--resend', 'send again conversions the ledger holds as sent (see below)')
      .option('--group <id>', 'the id shared by the runners a scheduler starts together for this backfill (e.g. the CI run id): a runner of the group starting after the others finished does nothing instead of beginning again')
      .option('--json', 'print the summary as one JSON object on stdout')
      .addOption(failOnOption())
      .addHelpText(
        'after',
        `
The watermark of the nightly run is never moved. Conversions the ledger holds as sent are skipped,
unless --resend. A resent Event API conversion keeps its uuid and its timestamp (occurred_at), so
Optimizely keeps the first copy it accepted and drops the resend: a resend repairs a conversion
that was lost or refused, and never counts one twice. If the mapping now gives a conversion a
different occurred_at, its timestamp differs and Optimizely counts it again: fix times with care.
The classic endpoint does not de-duplicate: --resend there sends second copies.
${EXIT_CODES_HELP}`,
      ),
  ).action(async (name: string, flags: BackfillFlags) => {
    const project = projectFrom(io, flags);
    const target = resolveJob(project, name);
    const zone = flags.tz ?? target.job.timezone;
    let range = flags.from || flags.to ? parseRange(flags.from, flags.to, zone) : undefined;
    let resend = flags.resend === true;
    if (!range) {
      if (!flags.resume) throw new ConveyError('USAGE', 'backfill needs --from and --to (or --resume)', { hint: 'e.g. convey backfill orders --from 2026-03-01 --to 2026-04-01' });
      const open = await withStateReadOnly(io, project, `convey backfill ${name}`, async (store) => (store ? latestOpenBackfill(store.db, name) : undefined));
      if (!open) throw new ConveyError('USAGE', `job "${name}" has no unfinished backfill to resume`, { hint: 'Start one with --from and --to.' });
      range = open.range;
      resend = open.resend;
    }
    if (flags.group !== undefined && !/^\S{1,200}$/.test(flags.group)) {
      throw new ConveyError('USAGE', `--group ${JSON.stringify(flags.group)} is not a runner group id`, { hint: 'Give 1 to 200 characters without spaces, the same on every runner: e.g. --group "$GITHUB_RUN_ID".' });
    }
    const options = { range, chunk: flags.chunk, zone, resend, ...(flags.group ? { group: flags.group } : {}) };
    await executeCommand(io, project, target, { json: flags.json, failOn: flags.failOn, command: `convey backfill ${name}`, mode: 'backfill', needsSource: true, progressLabel: `backfill ${name}` }, (deps, progress) =>
      backfillJob(deps, {
        ...options,
        ...(progress ? { onChunk: (i: number, total: number, chunk) => progress.setLabel(`backfill ${name} chunk ${i + 1}/${total} (${chunk.start.slice(0, 10)})`) } : {}),
      }),
    );
  });
}
