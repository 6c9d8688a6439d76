import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ConveyError } from '../../errors.ts';
import { startReceiver, type ReceiverProtocol } from '../../receiver/server.ts';
import type { CliIO } from '../io.ts';

/**
 * `convey receiver`: run the strict local stand-in for Optimizely until SIGINT/SIGTERM, then print
 * what it saw as one JSON line. All behaviour lives in src/receiver; this only maps flags.
 */
export function receiverCommand(io: CliIO): Command {
  return new Command('receiver')
    .description('Run a strict local Optimizely stand-in that validates, de-duplicates and counts what convey sends.')
    .addOption(new Option('--port <n>', 'TCP port; 0 picks a free one (the listening line shows it)').default(0).argParser(integer('--port', 0, 65535)))
    .addOption(new Option('--protocol <name>', 'which Optimizely protocol to speak').choices(['events', 'classic']).default('events'))
    .option('--host <address>', 'interface to bind', '127.0.0.1')
    .option('--record <file.ndjson>', 'write one NDJSON line per accepted conversion to this file (replaced at start)')
    .option('--lenient', 'answer success to invalid requests, like the real Optimizely without X-Optimizely-Strict')
    .addOption(new Option('--fail-rate <share>', 'share of requests answered 500').argParser(share('--fail-rate')))
    .addOption(new Option('--throttle-rate <share>', 'share of requests answered 429 with Retry-After').argParser(share('--throttle-rate')))
    .addOption(new Option('--retry-after <seconds>', 'Retry-After on 429 answers').argParser(integer('--retry-after', 0, 86_400)))
    .addOption(new Option('--drop-rate <share>', 'share of connections destroyed without an answer').argParser(share('--drop-rate')))
    .addOption(new Option('--stall-rate <share>', 'share of requests answered only after --stall-ms').argParser(share('--stall-rate')))
    .addOption(new Option('--stall-ms <ms>', 'how long a stalled request waits').argParser(integer('--stall-ms', 0, 3_600_000)))
    .addOption(new Option('--delay-ms <ms>', 'fixed latency added to every answer').argParser(integer('--delay-ms', 0, 3_600_000)))
    .addOption(new Option('--seed <n>', 'seed for the random faults, to replay a run').argParser(integer('--seed', 0, 2 ** 32 - 1)))
    .action(async (flags: Flags) => {
      const receiver = await startReceiver({
        protocol: flags.protocol,
        port: flags.port,
        host: flags.host,
        ...(flags.record === undefined ? {} : { record: resolve(io.cwd, flags.record) }),
        lenient: flags.lenient === true,
        // A long-running receiver nobody queries would otherwise hold every conversion in memory.
        keep: false,
        logger: io.logger,
        faults: {
          ...(flags.failRate === undefined ? {} : { failRate: flags.failRate }),
          ...(flags.throttleRate === undefined ? {} : { throttleRate: flags.throttleRate }),
          ...(flags.retryAfter === undefined ? {} : { retryAfterSeconds: flags.retryAfter }),
          ...(flags.dropRate === undefined ? {} : { dropRate: flags.dropRate }),
          ...(flags.stallRate === undefined ? {} : { stallRate: flags.stallRate }),
          ...(flags.stallMs === undefined ? {} : { stallMs: flags.stallMs }),
          ...(flags.delayMs === undefined ? {} : { delayMs: flags.delayMs }),
          ...(flags.seed === undefined ? {} : { seed: flags.seed }),
        },
      });
      io.stdout.write(`receiver listening on ${receiver.origin} (protocol ${flags.protocol})\n`);
      await untilAborted(io.signal);
      await receiver.close();
      io.stdout.write(JSON.stringify(receiver.stats()) + '\n');
    });
}

interface Flags {
  port: number;
  protocol: ReceiverProtocol;
  host: string;
  record?: string;
  lenient?: boolean;
  failRate?: number;
  throttleRate?: number;
  retryAfter?: number;
  dropRate?: number;
  stallRate?: number;
  stallMs?: number;
  delayMs?: number;
  seed?: number;
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((done) => signal.addEventListener('abort', () => done(), { once: true }));
}

function share(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
      throw new ConveyError('USAGE', `${flag} must be a share between 0 and 1, got ${JSON.stringify(value)}`, {
        hint: `${flag} 0.3 affects 30% of requests.`,
      });
    }
    return n;
  };
}

function integer(flag: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^[0-9]+$/.test(value) || n < min || n > max) {
      throw new ConveyError('USAGE', `${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}
