import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import type { JobConfig } from '../../config/project.ts';
import { ConveyError } from '../../errors.ts';
import { conveyVersion } from '../../package-root.ts';
import { actor } from '../../pipeline/job-lock.ts';
import { parseBound } from '../../pipeline/range.ts';
import type { Db } from '../../state/db.ts';
import { tryLockJob, unlockJob } from '../../state/sql/locks.ts';
import { insertRun, liveRun } from '../../state/sql/runs.ts';
import { deleteWatermark, readWatermark, setWatermark } from '../../state/sql/watermarks.ts';
import { fromEpochMillis, type Instant } from '../../time/instant.ts';
import { systemClock } from '../../time/clock.ts';
import { hostname } from 'node:os';
import { projectFrom, resolveJob, withProjectOption, withState, withStateReadOnly, type CommonFlags } from '../context.ts';
import type { CliIO } from '../io.ts';

interface StateFlags extends CommonFlags {
  yes?: boolean;
  tz?: string;
}

/**
 * `convey state show|set|reset <job>`: the watermark, changed on purpose. Every change takes the
 * job (never under a running job), asks first unless --yes, and leaves a line in the run history
 * saying who changed it from what to what. Nobody edits the state tables by hand.
 */
export function stateCommand(io: CliIO): Command {
  const state = new Command('state').description("Show or change a job's watermark (where the next run starts reading).");
  state.addCommand(
    withProjectOption(new Command('show').argument('<job>', 'job name').option('--json', 'print JSON')).action(async (name: string, flags: StateFlags) => {
      const project = projectFrom(io, flags);
      const { job } = resolveJob(project, name);
      const value = await withStateReadOnly(io, project, `convey state show ${name}`, async (store) => (store ? readWatermark(store.db, name) : undefined));
      if (flags.json) {
        io.stdout.write(JSON.stringify({ job: name, watermark: value ?? null, start: job.start }) + '\n');
        return;
      }
      io.stdout.write(value ? `${name}: watermark ${value}\n` : `${name}: no watermark yet; the next run starts at ${job.start} (the job's start)\n`);
    }),
  );
  state.addCommand(
    withProjectOption(
      new Command('set')
        .argument('<job>', 'job name')
        .argument('<time>', 'new watermark: a time (2026-03-01T06:00:00Z) or a date (its midnight in --tz)')
        .option('--tz <zone>', "zone for a date (default: the job's timezone)")
        .option('--yes', 'do not ask for confirmation')
        .description('Move the watermark (back to re-read, forward to skip). The ledger still stops conversions being sent twice.'),
    ).action(async (name: string, time: string, flags: StateFlags) => {
      const project = projectFrom(io, flags);
      const { job } = resolveJob(project, name);
      const value = parseBound(time, flags.tz ?? job.timezone, '<time>');
      // Runs move the watermark forward only: one set in the future makes every run until then
      // read an empty window and end "succeeded", sending nothing (a mistyped year skips months).
      const now = fromEpochMillis(systemClock.now());
      if (value > now) {
        throw new ConveyError('USAGE', `<time> ${value} is in the future (now is ${now}): every run until then would send nothing`, {
          hint: `To skip everything up to now, give the current time: convey state set ${name} ${now}`,
        });
      }
      await change(io, project, job, flags, value);
    }),
  );
  state.addCommand(
    withProjectOption(
      new Command('reset')
        .argument('<job>', 'job name')
        .option('--yes', 'do not ask for confirmation')
        .description("Forget the watermark: the next run reads from the job's start again (already-sent conversions are skipped by the ledger)."),
    ).action(async (name: string, flags: StateFlags) => {
      const project = projectFrom(io, flags);
      const { job } = resolveJob(project, name);
      await change(io, project, job, flags, undefined);
    }),
  );
  return state;
}

async function change(io: CliIO, project: ReturnType<typeof projectFrom>, job: JobConfig, flags: StateFlags, value: Instant | undefined): Promise<void> {
  await withState(io, project, `convey state ${value ? 'set' : 'reset'} ${job.name}`, async (store) => {
    const before = await readWatermark(store.db, job.name);
    const describe = (v: Instant | undefined): string => v ?? `(none: start at ${job.start})`;
    const what = `${job.name}: watermark ${describe(before)} → ${describe(value)}`;
    if (!flags.yes && !(await confirm(io, `${what}\nChange it? [y/N] `))) {
      io.stdout.write('unchanged\n');
      return;
    }
    await withJobLock(store.db, job.name, async () => {
      await store.db.transaction(async (tx) => {
        const runId = await insertRun(tx, {
          job: job.name,
          mode: 'state',
          status: 'succeeded',
          version: conveyVersion,
          host: hostname(),
          pid: process.pid,
          actor: actor(),
          note: `watermark changed from ${before ?? 'none'} to ${value ?? 'none'} by ${actor()}`,
          ...(before ? { watermarkBefore: before } : {}),
        });
        await tx.query('update convey.runs set watermark_after = $2 where id = $1', [runId, value ?? null]);
        if (value) await setWatermark(tx, job.name, value, runId);
        else await deleteWatermark(tx, job.name);
      });
    });
    io.stdout.write(`${what} (recorded in the run history)\n`);
  });
}

async function withJobLock(db: Db, job: string, fn: () => Promise<void>): Promise<void> {
  const conn = await db.lockConnection();
  if (!(await tryLockJob(conn, job))) {
    const holder = await liveRun(db, job);
    throw new ConveyError('JOB_LOCKED', `job "${job}" is held by ${holder ? `run ${holder.id} (pid ${holder.pid} on ${holder.host})` : 'another run'}; the watermark was not changed`, {
      hint: 'Change it when that run has finished.',
    });
  }
  try {
    await fn();
  } finally {
    await unlockJob(conn, job);
  }
}

async function confirm(io: CliIO, question: string): Promise<boolean> {
  if (!process.stdin.isTTY || !io.isTTY) {
    throw new ConveyError('USAGE', 'changing the watermark needs a confirmation', { hint: 'Add --yes (no terminal to ask on).' });
  }
  const rl = createInterface({ input: process.stdin, output: io.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
