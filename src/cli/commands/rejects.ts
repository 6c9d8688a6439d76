import { Command, Option } from 'commander';
import { replayRejects } from '../../pipeline/replay.ts';
import { listOpenRejects } from '../../state/sql/rejects.ts';
import { nonNegativeInteger, projectFrom, resolveJob, withProjectOption, withStateReadOnly, type CommonFlags } from '../context.ts';
import { executeCommand } from '../execute.ts';
import type { CliIO } from '../io.ts';

interface RejectsFlags extends CommonFlags {
  reason?: string;
  limit: number;
  replay?: boolean;
}

export function rejectsCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('rejects')
      .description('List the rows a job rejected (with reason and the row), or --replay them after fixing the mapping.')
      .argument('<job>', 'job name')
      .option('--reason <code>', 'only this reason (e.g. bad_revenue, duplicate_conversion, refused)')
      .addOption(new Option('--limit <n>', 'most rejects to list').default(100).argParser(nonNegativeInteger('--limit')))
      .option('--replay', 'read the rejected conversion ids again through the current mapping and send those that now pass')
      .option('--json', 'print JSON'),
  ).action(async (name: string, flags: RejectsFlags) => {
    const project = projectFrom(io, flags);
    const target = resolveJob(project, name);
    if (flags.replay) {
      await executeCommand(io, project, target, { json: flags.json, command: `convey rejects ${name} --replay`, mode: 'replay', needsSource: true, progressLabel: `replay ${name}` }, (deps) =>
        replayRejects(deps, flags.reason ? { reasonCode: flags.reason } : {}),
      );
      return;
    }
    const rejects = await withStateReadOnly(io, project, `convey rejects ${name}`, async (store) =>
      store ? listOpenRejects(store.db, name, { limit: flags.limit, ...(flags.reason ? { reasonCode: flags.reason } : {}) }) : [],
    );
    if (flags.json) {
      io.stdout.write(JSON.stringify({ job: name, rejects }) + '\n');
      return;
    }
    if (rejects.length === 0) {
      io.stdout.write(`no open rejects for ${name}${flags.reason ? ` with reason ${flags.reason}` : ''}\n`);
      return;
    }
    for (const r of rejects) {
      io.stdout.write(`${r.conversionId ?? '(no conversion_id)'}  ${r.reasonCode}  ${r.reason}${r.timesSeen > 1 ? `  (seen ${r.timesSeen} times)` : ''}\n`);
      io.stdout.write(`  row ${JSON.stringify(r.row)}\n`);
    }
    io.stdout.write(`\n${rejects.length} open reject(s)${rejects.length === flags.limit ? ` (first ${flags.limit}; --limit for more)` : ''}. After fixing jobs/${name}.sql: convey rejects ${name} --replay\n`);
  });
}
