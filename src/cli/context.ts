import { Option, type Command } from 'commander';
import { loadJob, loadProject, type JobConfig, type Project } from '../config/project.ts';
import { createDeliveryEngine } from '../delivery/engine.ts';
import { createDestination, type ResolvedDestination } from '../destinations/index.ts';
import { ConveyError } from '../errors.ts';
import { ndjsonTransport, type Transport } from '../pipeline/transport.ts';
import { openSource, type Source } from '../source/open.ts';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { migrations } from '../../migrations/index.ts';
import { pendingMigrations } from '../state/migrate.ts';
import { openStateStore, stateLocation, type StateStore } from '../state/store.ts';
import { systemClock } from '../time/clock.ts';
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
      throw new ConveyError('STATE_ERROR', `cannot read the state store: ${(error as Error).message}`, {
        cause: error,
        hint: 'Check CONVEY_STATE_URL points at a reachable PostgreSQL database.',
      });
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
 * `lockLost` is the state store's: once the job lock is gone another worker may take the job and
 * resend this run's pending batches, so requests not yet started must not leave either.
 */
export function createTransport(io: CliIO, job: JobConfig, resolved: ResolvedDestination, lockLost: AbortSignal): Transport {
  if (resolved.output.kind === 'file') return ndjsonTransport(resolved.output.path === '-' ? io.stdout : resolved.output.path);
  const engine = createDeliveryEngine({
    clock: systemClock,
    logger: io.logger.child({ job: job.name }),
    rateLimit: job.rateLimit,
    retry: job.retry,
    timeouts: job.timeouts,
    signal: AbortSignal.any([io.signal, lockLost]),
  });
  return {
    send: (request) => engine.send(request),
    requestCount: () => engine.stats().requests,
    stats: () => engine.stats() as unknown as Record<string, unknown>,
    close: () => engine.close(),
  };
}

export function resolveJob(project: Project, name: string): { job: JobConfig; resolved: ResolvedDestination } {
  const job = loadJob(project, name);
  return { job, resolved: createDestination(job.destination) };
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
