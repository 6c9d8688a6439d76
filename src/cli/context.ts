import { Option, type Command } from 'commander';
import { loadJob, loadProject, type JobConfig, type Project } from '../config/project.ts';
import { isSelection, type Selection } from '../config/select.ts';
import { createDeliveryEngine } from '../delivery/engine.ts';
import { createDestination, type ResolvedDestination } from '../destinations/index.ts';
import { didYouMean } from '../config/did-you-mean.ts';
import { ConveyError } from '../errors.ts';
import { ndjsonTransport, type Transport } from '../pipeline/transport.ts';
import { openSource, type Source } from '../source/open.ts';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { DECREASE_FACTOR, DECREASE_WINDOW_MS, FLOOR_FRACTION, FLOOR_MIN_PER_SECOND, INCREASE_FRACTION } from '../delivery/adaptive-rate.ts';
import { HEADROOM, LeasedBudget } from '../delivery/leased-budget.ts';
import type { PauseGate } from '../delivery/pause-gate.ts';
import { sharedSchedule } from '../state/sql/rate-budgets.ts';
import { migrations } from '../../migrations/index.ts';
import { pendingMigrations } from '../state/migrate.ts';
import { openStateStore, stateLocation, stateStoreError, type StateStore } from '../state/store.ts';
import { systemClock } from '../time/clock.ts';
import { isWarningCheck, WARNING_CHECKS, type WarningCheck } from '../verdict/warning.ts';
import type { CliIO } from './io.ts';

export interface CommonFlags {
  project?: string;
  json?: boolean;
}

/** Every command reads config/ and jobs/ from --project (default: the current folder). */
export function withProjectOption(command: Command): Command {
  return command.addOption(new Option('--project <dir>', 'folder holding config/ and jobs/ (default: the current folder)'));
}

export function projectFrom(io: CliIO, flags: CommonFlags): Project {
  return loadProject(resolve(io.cwd, flags.project ?? '.'), io.env);
}

/** Opens the state store (CONVEY_STATE_URL, or embedded under <project>/.convey/) for `fn`. */
export async function withState<T>(io: CliIO, project: Project, command: string, fn: (store: StateStore) => Promise<T>): Promise<T> {
  const store = await openStateStore(stateLocation(project.dir, io.env), command);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * For commands that change nothing (plan, status, rejects): opens the store without migrating it,
 * and without creating an embedded one. `fn` gets undefined when there is no state yet (no run
 * ever recorded anything), which reads as an empty ledger.
 */
export async function withStateReadOnly<T>(io: CliIO, project: Project, command: string, fn: (store: StateStore | undefined) => Promise<T>): Promise<T> {
  const location = stateLocation(project.dir, io.env);
  if (location.kind === 'embedded' && !existsSync(location.dataDir)) return fn(undefined);
  const store = await openStateStore(location, command, false);
  try {
    const pending = await pendingMigrations(store.connection).catch((error: unknown) => {
      throw stateStoreError(error, location, 'read');
    });
    if (pending.length === migrations.length) return await fn(undefined);
    if (pending.length) {
      throw new ConveyError('STATE_ERROR', `the state store is behind this version of convey (missing ${pending.join(', ')})`, {
        hint: 'Run convey migrate (or any convey run, which migrates on start).',
      });
    }
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function withSource<T>(job: JobConfig, command: string, fn: (source: Source) => Promise<T>): Promise<T> {
  const source = await openSource(job.source, { command });
  try {
    return await fn(source);
  } finally {
    await source.close();
  }
}

/**
 * Sends over HTTP through the delivery engine, or appends to the `file` destination's NDJSON.
 * The state store's `lockLost` stops it too: once the job lock is gone another worker may take the
 * job and resend this run's pending batches, so requests not yet started must not leave either.
 * On a store several processes share, `rateLimit.perSecond` is the destination's budget, shared
 * by every runner (delivery/leased-budget.ts); on the embedded store, this process's own.
 */
export async function createTransport(io: CliIO, job: JobConfig, resolved: ResolvedDestination, store: StateStore): Promise<Transport> {
  if (resolved.output.kind === 'file') return ndjsonTransport(resolved.output.path === '-' ? io.stdout : resolved.output.path);
  const logger = io.logger.child({ job: job.name });
  const perSecond = job.rateLimit.perSecond;
  const schedule =
    store.db.concurrent && perSecond !== undefined
      ? await sharedSchedule(store.db, {
          key: resolved.destination.key,
          perSecond: perSecond * (1 - HEADROOM),
          decreaseFactor: DECREASE_FACTOR,
          increaseFraction: INCREASE_FRACTION,
          floor: Math.max(FLOOR_MIN_PER_SECOND, perSecond * FLOOR_FRACTION),
          decreaseWindowMs: DECREASE_WINDOW_MS,
        })
      : undefined;
  const budget = schedule && perSecond !== undefined ? (gate: PauseGate) => new LeasedBudget({ clock: systemClock, logger, perSecond, gate, schedule }) : undefined;
  // stopRunAfter sits with the retry settings in the job's file (it is about what retrying cannot
  // fix), but it is the engine's, not a request's retry policy.
  const { stopRunAfter, ...retry } = job.retry;
  const engine = createDeliveryEngine({
    clock: systemClock,
    logger,
    rateLimit: job.rateLimit,
    retry,
    ...(stopRunAfter === undefined ? {} : { stopRunAfter }),
    timeouts: job.timeouts,
    signal: AbortSignal.any([io.signal, store.db.lockLost]),
    ...(budget ? { budget } : {}),
  });
  return {
    send: (request) => engine.send(request),
    requestCount: () => engine.stats().requests,
    stats: () => engine.stats() as unknown as Record<string, unknown>,
    breaker: engine.breaker,
    close: () => engine.close(),
  };
}

/** The host recorded for runs: CONVEY_HOSTNAME (containers whose hostname says nothing; tests), else the machine's name. */
export const runnerHost = (io: CliIO): string => io.env.CONVEY_HOSTNAME || hostname();

export function resolveJob(project: Project, name: string): { job: JobConfig; resolved: ResolvedDestination } {
  const job = loadJob(project, name);
  return { job, resolved: createDestination(job.destination) };
}

/** The selection flags of run, plan and status (config/select.ts). */
export interface SelectionFlags {
  all?: boolean;
  select?: string[];
  exclude?: string[];
}

export function withSelectionOptions(command: Command): Command {
  return command
    .option('--all', 'every job in jobs/')
    .option('--select <spec...>', 'jobs by name, glob (orders-*) or tag (tag:nightly)')
    .option('--exclude <spec...>', 'leave out jobs by name, glob or tag');
}

/** The selection given by arguments and flags; `many` when it is (or may be) more than one job. */
export function selectionFrom(args: string[], flags: SelectionFlags): { many: boolean; selection: Selection } {
  const selection = { include: [...args, ...(flags.select ?? [])], exclude: flags.exclude ?? [], all: flags.all === true };
  return { many: isSelection({ ...selection, viaFlag: flags.select !== undefined }), selection };
}

/** Parses a non-negative integer flag. */
export function nonNegativeInteger(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
      throw new ConveyError('USAGE', `${flag} must be a whole number ≥ 0, got ${JSON.stringify(value)}`, { hint: `e.g. ${flag} 100` });
    }
    return n;
  };
}

/** Parses an integer flag ≥ 1. */
export function positiveInteger(flag: string): (value: string) => number {
  const parse = nonNegativeInteger(flag);
  return (value) => {
    const n = parse(value);
    if (n < 1) throw new ConveyError('USAGE', `${flag} must be at least 1, got ${n}`, { hint: `e.g. ${flag} 4` });
    return n;
  };
}

/**
 * `--fail-on warnings` or `--fail-on low_volume,new_reject_reason` (also repeated): the verdict's
 * checks that turn a successful run's exit code into 5.
 */
export function failOnOption(): Option {
  return new Option('--fail-on <checks>', `exit 5 when the run succeeded but got one of these warnings: "warnings" (any), or a list of ${WARNING_CHECKS.join(', ')}`).argParser(
    (value: string, previous: Set<WarningCheck> | undefined): Set<WarningCheck> => {
      const checks = new Set(previous);
      for (const name of value.split(',').map((v) => v.trim()).filter(Boolean)) {
        if (name === 'warnings') WARNING_CHECKS.forEach((c) => checks.add(c));
        else if (isWarningCheck(name)) checks.add(name);
        else {
          const guess = didYouMean(name, ['warnings', ...WARNING_CHECKS]);
          throw new ConveyError('USAGE', `--fail-on: "${name}" is not a check`, { hint: guess ? `Did you mean "${guess}"?` : `Use warnings, or one of ${WARNING_CHECKS.join(', ')}.` });
        }
      }
      return checks;
    },
  );
}
