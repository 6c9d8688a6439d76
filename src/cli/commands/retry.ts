import { Command } from 'commander';
import { retryFailed } from '../../pipeline/retry-failed.ts';
import { projectFrom, resolveJob, withProjectOption, type CommonFlags } from '../context.ts';
import { executeCommand } from '../execute.ts';
import type { CliIO } from '../io.ts';
import { EXIT_CODES_HELP } from './run.ts';

export function retryCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('retry')
      .description("Send now the job's failed, deferred and in-doubt conversions, from the ledger (reads no new rows).")
      .argument('<job>', 'job name')
      .option('--json', 'print the summary as one JSON object on stdout')
      .addHelpText('after', EXIT_CODES_HELP),
  ).action(async (name: string, flags: CommonFlags) => {
    const project = projectFrom(io, flags);
    const target = resolveJob(project, name);
    await executeCommand(io, project, target, { json: flags.json, command: `convey retry ${name}`, mode: 'retry', needsSource: false, progressLabel: `retry ${name}` }, (deps) => retryFailed(deps));
  });
}
