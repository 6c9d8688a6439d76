import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { loadProject } from '../../config/project.ts';
import { ConveyError } from '../../errors.ts';
import { packageRoot } from '../../package-root.ts';
import { runJob } from '../../pipeline/run-job.ts';
import { startReceiver, type Receiver } from '../../receiver/server.ts';
import { openSource } from '../../source/open.ts';
import { systemClock } from '../../time/clock.ts';
import { createTransport, resolveJob, withProjectOption, withState, type CommonFlags } from '../context.ts';
import type { CliIO } from '../io.ts';
import { formatSummary } from '../output.ts';

const SEED_URL =
  'http://1234567.log.optimizely.com/event?a=1234567&n=example_event&u=oeu1316548451038r0.12412704364396632&x987654321=1111111&x876543210=2222222_3333333&v=500&g=1234567';

/**
 * `convey demo` (npm run demo): the example jobs on embedded defaults, against local receivers.
 * Seeds an embedded warehouse with example orders (the seed document's example among them), runs
 * the Event API job, runs it again to show nothing is sent twice, then runs the classic job and
 * compares the seed conversion's URL with the seed document's.
 */
export function demoCommand(io: CliIO): Command {
  return withProjectOption(new Command('demo').description('Run the example jobs end to end against local Optimizely-compatible receivers.')).action(
    async (flags: CommonFlags) => {
      const dir = flags.project ?? (existsSync(join(io.cwd, 'jobs', 'phone-orders.json')) ? io.cwd : packageRoot);
      const marker = join(dir, '.convey', 'demo');
      // Start from a clean slate each time, but only over state the demo itself created.
      if (existsSync(marker)) {
        for (const part of ['state', 'warehouse']) rmSync(join(dir, '.convey', part), { recursive: true, force: true });
      } else if (existsSync(join(dir, '.convey', 'state'))) {
        throw new ConveyError('USAGE', `${join(dir, '.convey')} holds state the demo did not create`, {
          hint: 'Run the demo in a fresh clone, or move .convey/ aside.',
        });
      }
      mkdirSync(join(dir, '.convey'), { recursive: true });
      writeFileSync(marker, 'created by convey demo; the demo resets .convey/state and .convey/warehouse while this file is here\n');

      const events = await startReceiver({ protocol: 'events' });
      const classic = await startReceiver({ protocol: 'classic' });
      try {
        const env: NodeJS.ProcessEnv = { ...io.env, CONVEY_EVENTS_ENDPOINT: events.url, CONVEY_CLASSIC_ENDPOINT: classic.url };
        delete env.CONVEY_STATE_URL;
        delete env.CONVEY_ENV;
        const project = loadProject(dir, env);
        const demoIO: CliIO = { ...io, env };

        const first = resolveJob(project, 'phone-orders');
        const seeded = await seedWarehouse(first.job.source, dir);
        out(io, `Seeded the embedded warehouse (.convey/warehouse) with ${seeded} phone orders, the seed document's example among them.`);
        out(io, `Local receivers: Event API ${events.url}, classic ${classic.url}\n`);

        await withState(demoIO, project, 'convey demo', async (store) => {
          const run = async (name: string): Promise<void> => {
            const { job, resolved } = resolveJob(project, name);
            const source = await openSource(job.source, { command: 'convey demo' });
            const transport = await createTransport(demoIO, job, resolved, store);
            try {
              const summary = await runJob({
                db: store.db,
                source,
                destination: resolved.destination,
                transport,
                job,
                clock: systemClock,
                logger: io.logger.child({ job: name }),
                signal: io.signal,
              });
              io.stdout.write(formatSummary(summary) + '\n');
            } finally {
              await transport.close();
              await source.close();
            }
          };

          out(io, '1. convey run phone-orders: the Event API job, first run');
          await run('phone-orders');
          out(io, '2. convey run phone-orders again: the ledger already holds every conversion, nothing is sent twice');
          await run('phone-orders');
          out(io, '3. convey run phone-orders-classic: the same orders through the classic GET endpoint');
          await run('phone-orders-classic');
        });

        report(io, events, classic);
      } finally {
        await events.close();
        await classic.close();
      }
      out(io, 'Next: node bin/convey.js status; node bin/convey.js rejects phone-orders; then README "Writing a job".');
    },
  );
}

async function seedWarehouse(source: Parameters<typeof openSource>[0], dir: string): Promise<number> {
  const warehouse = await openSource(source, { command: 'convey demo (seeding)', create: true });
  try {
    await warehouse.execute(readFileSync(join(packageRoot, 'examples', 'demo', 'phone_orders.sql'), 'utf8'));
    const { rows } = await warehouse.execute('select count(*)::int as n from phone_orders');
    void dir;
    return (rows[0] as { n: number }).n;
  } finally {
    await warehouse.close();
  }
}

function report(io: CliIO, events: Receiver, classic: Receiver): void {
  const e = events.stats();
  const c = classic.stats();
  out(io, `The Event API receiver accepted ${e.unique} distinct conversions in ${e.acceptedRequests} requests (${e.duplicates} duplicates, ${e.invalidRequests} invalid).`);
  out(io, `The classic receiver accepted ${c.unique} distinct conversions in ${c.acceptedRequests} requests (${c.duplicates} duplicates, ${c.invalidRequests} invalid).`);
  const seed = classic.accepted().find((a) => a.visitorId === 'oeu1316548451038r0.12412704364396632');
  if (seed) {
    const pairs = seed.raw as Array<[string, string]>;
    const sent = pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    const expected = new URL(SEED_URL).search.slice(1);
    out(io, '\nThe seed document\'s example, as convey sent it (time and src added after the seed\'s parameters):');
    out(io, `  seed:   ${expected}`);
    out(io, `  convey: ${sent}`);
    out(io, sent.startsWith(expected + '&') ? '  identical up to the additions ✓\n' : '  DIFFERENT from the seed ✗\n');
  }
}

function out(io: CliIO, line: string): void {
  io.stdout.write(line + '\n');
}
