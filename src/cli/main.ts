import { Command, CommanderError } from 'commander';
import { ConveyError, toConveyError } from '../errors.ts';
import { createLogger, type LogLevel } from '../log.ts';
import { reportCommandFailure } from '../notify/command-failure.ts';
import { conveyVersion } from '../package-root.ts';
import { backfillCommand } from './commands/backfill.ts';
import { demoCommand } from './commands/demo.ts';
import { migrateCommand } from './commands/migrate.ts';
import { planCommand } from './commands/plan.ts';
import { receiverCommand } from './commands/receiver.ts';
import { rejectsCommand } from './commands/rejects.ts';
import { retryCommand } from './commands/retry.ts';
import { runCommand } from './commands/run.ts';
import { stateCommand } from './commands/state.ts';
import { initCommand } from './commands/init.ts';
import { newCommand } from './commands/new.ts';
import { statusCommand } from './commands/status.ts';
import { testCommand } from './commands/test.ts';
import { ExitCode, exitCodeOf } from './exit-codes.ts';
import type { CliIO } from './io.ts';

/** Builds the command tree; commands report their exit code with `io.setExitCode`, never exit. */
export function buildProgram(io: CliIO): Command {
  const program = new Command('convey')
    .description('Send offline conversions from SQL to Optimizely, each exactly once.')
    .version(conveyVersion)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride();
  for (const make of [initCommand, newCommand, runCommand, planCommand, testCommand, backfillCommand, statusCommand, rejectsCommand, retryCommand, stateCommand, migrateCommand, receiverCommand, demoCommand]) {
    program.addCommand(make(io));
  }
  // addCommand does not pass these down: without them a usage error deep in the tree would call
  // process.exit from inside commander, and print to the real stdout in tests.
  const inherit = (command: Command): void => {
    for (const sub of command.commands) {
      sub.exitOverride().configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) }).showHelpAfterError('(run with --help for usage)');
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

async function ask(question: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

/** Prints an error the way an on-call engineer needs it: what, and how to fix it. */
export function reportError(io: CliIO, error: unknown): number {
  const conveyError = toConveyError(error);
  io.logger.error(conveyError.message, { code: conveyError.code, ...(conveyError.hint ? { hint: conveyError.hint } : {}) });
  if (conveyError.code === 'INTERNAL' && conveyError.cause instanceof Error) io.logger.debug(conveyError.cause.stack ?? '');
  // 130 or 143 by the signal that stopped the command, as for a run.
  const code = exitCodeOf(conveyError, io.signal.reason as NodeJS.Signals | undefined);
  reportCommandFailure(error, conveyError, code, { env: io.env, stderr: io.stderr, warn: (message) => io.logger.warn(message) });
  return code;
}

/**
 * How long a graceful stop may take. Requests in flight end by their own timeouts (30 s by
 * default); a systemd unit gives TimeoutStopSec=120 before SIGKILL, so 60 s leaves room to record.
 */
const STOP_DEADLINE_MS = 60_000;

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];
const isLogLevel = (text: string): text is LogLevel => (LOG_LEVELS as readonly string[]).includes(text);

export async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const isTTY = process.stdout.isTTY === true;
  const levelText = process.env.CONVEY_LOG_LEVEL || 'info';
  const logger = createLogger({
    level: isLogLevel(levelText) ? levelText : 'info',
    format: process.stderr.isTTY ? 'human' : 'json',
  });
  let exitCode: number = ExitCode.OK;
  const io: CliIO = {
    stdout: process.stdout,
    stderr: process.stderr,
    isTTY,
    env: process.env,
    cwd: process.cwd(),
    logger,
    signal: controller.signal,
    setExitCode: (code) => {
      exitCode = code;
    },
    ...(process.stdin.isTTY && process.stderr.isTTY ? { ask } : {}),
  };

  // Checked before anything is read or sent: Number("60s") is NaN and Number("") is 0, and either
  // made the first signal exit at once, leaving what was in flight to be sent again.
  const stopText = process.env.CONVEY_STOP_TIMEOUT_MS || String(STOP_DEADLINE_MS);
  const deadlineMs = Number(stopText);
  if (!/^\d+$/.test(stopText) || !Number.isSafeInteger(deadlineMs)) {
    return reportError(io, new ConveyError('CONFIG_INVALID', `CONVEY_STOP_TIMEOUT_MS=${JSON.stringify(stopText)} is not a whole number of milliseconds`, {
      hint: `e.g. CONVEY_STOP_TIMEOUT_MS=${STOP_DEADLINE_MS} (the default), or unset it.`,
    }));
  }
  if (!isLogLevel(levelText)) {
    return reportError(io, new ConveyError('CONFIG_INVALID', `CONVEY_LOG_LEVEL=${JSON.stringify(levelText)} is not a log level`, {
      hint: `Use one of ${LOG_LEVELS.join(', ')}, or unset it (info).`,
    }));
  }

  // First signal: stop gracefully (finish what is in flight, record it, print the summary),
  // within a deadline. Second signal, or the deadline: leave now; what was in flight is in doubt
  // and the next run resends it.
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    const code = signal === 'SIGTERM' ? ExitCode.SIGTERM : ExitCode.SIGINT;
    if (signals === 1) {
      logger.warn(`${signal}: stopping: no new reads, finishing requests in flight for up to ${deadlineMs / 1000} s (send ${signal} again to exit at once)`);
      controller.abort(signal);
      setTimeout(() => {
        logger.error(`requests still in flight after ${deadlineMs / 1000} s: exiting; the next run resends them`);
        process.exit(code);
      }, deadlineMs).unref();
      return;
    }
    process.exit(code);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with code 0.
      return error.exitCode === 0 ? ExitCode.OK : ExitCode.CONFIG;
    }
    return reportError(io, error);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
