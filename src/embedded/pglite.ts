import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { ConveyError } from '../errors.ts';

/**
 * An embedded PostgreSQL (PGlite, compiled to WebAssembly) in a folder, served over the PostgreSQL
 * wire protocol on a loopback port by @electric-sql/pglite-socket, so convey's ordinary `pg` and
 * knex code paths talk to it exactly as they talk to a server. PGlite is a single session: one
 * connection, and one process per folder. Two processes on one folder would each keep their own
 * copy in memory and silently lose each other's writes, so the folder is guarded by a lock file.
 */
export interface EmbeddedPostgres {
  connection: pg.ClientConfig;
  dataDir: string;
  /** Adds facts (the run id, the job) to the lock file, for the message another process gets. */
  describeHolder(info: Record<string, unknown>): void;
  close(): Promise<void>;
}

export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  command?: string;
  [key: string]: unknown;
}

export async function startEmbeddedPostgres(dataDir: string, command: string): Promise<EmbeddedPostgres> {
  mkdirSync(dirname(dataDir), { recursive: true });
  const lockFile = `${dataDir}.lock`;
  let holder: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), command };
  acquireLockFile(lockFile, holder, dataDir);
  const release = (): void => {
    heldLockFiles.delete(lockFile);
    try {
      const current = readHolder(lockFile);
      if (current?.pid === process.pid) unlinkSync(lockFile);
    } catch {
      // already gone
    }
  };
  holdUntilExit(lockFile, release);

  try {
    // Loaded on demand: 27 MB of WebAssembly that a PostgreSQL-backed run never needs.
    const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
      import('@electric-sql/pglite'),
      import('@electric-sql/pglite-socket'),
    ]);
    const db = await PGlite.create(dataDir);
    // Two, not one: a closing connection (the migrator's) may still be counted for a moment while the
    // next one opens. convey never uses two at the same time (see state/db.ts, singleConnection).
    const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 2 });
    await server.start();
    const port = (server as unknown as { port: number }).port;
    return {
      dataDir,
      connection: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
      describeHolder(info) {
        holder = { ...holder, ...info };
        writeFileSync(lockFile, JSON.stringify(holder));
      },
      async close() {
        await server.stop();
        await db.close();
        release();
      },
    };
  } catch (error) {
    release();
    throw new ConveyError('STATE_ERROR', `cannot open the embedded database in ${dataDir}: ${(error as Error).message}`, {
      cause: error,
      hint: 'If the folder was copied or damaged, move it aside and let convey create a new one.',
    });
  }
}

/**
 * A throwaway PostgreSQL in memory, served like the folder one: `convey test` runs a job's SQL on
 * it against fixture tables, with nothing on disk but a cache. Creating a PGlite database runs
 * initdb (2.7 s here); loading the dump of a fresh one takes 0.5 s, so the first call keeps that
 * dump in `cacheDir` (about 40 MB) and later calls start from it.
 */
export async function startMemoryPostgres(cacheDir: string): Promise<EmbeddedPostgres> {
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-socket')]);
  const version = (JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite'))), '..', 'package.json'), 'utf8')) as { version: string }).version;
  const dump = join(cacheDir, `pglite-${version}.tar`);
  let db: InstanceType<typeof PGlite>;
  if (existsSync(dump)) {
    db = await PGlite.create({ loadDataDir: new Blob([readFileSync(dump)]) });
  } else {
    db = await PGlite.create('memory://');
    const image = Buffer.from(await (await db.dumpDataDir('none')).arrayBuffer());
    mkdirSync(cacheDir, { recursive: true });
    // Written aside and renamed: two processes filling the cache at once each leave a whole file.
    const partial = `${dump}.${process.pid}`;
    writeFileSync(partial, image);
    renameSync(partial, dump);
  }
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 2 });
  await server.start();
  const port = (server as unknown as { port: number }).port;
  return {
    dataDir: 'memory://',
    connection: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
    describeHolder: () => undefined,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}

/** Lock files to remove if the process exits without closing its stores (one exit listener for all). */
const heldLockFiles = new Map<string, () => void>();
let exitListener = false;

function holdUntilExit(lockFile: string, release: () => void): void {
  heldLockFiles.set(lockFile, release);
  if (!exitListener) {
    exitListener = true;
    process.once('exit', () => [...heldLockFiles.values()].forEach((r) => r()));
  }
}

function acquireLockFile(lockFile: string, holder: LockHolder, dataDir: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, JSON.stringify(holder), { flag: 'wx' });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const current = readHolder(lockFile);
    if (current && isAlive(current, lockFile)) {
      // A holder on another host, or a pid reused by another program after a kill -9, never
      // finishes: say which file to delete once the user knows that convey is gone.
      throw new ConveyError('JOB_LOCKED', `the embedded database in ${dataDir} is in use by ${describeLockHolder(current)}`, {
        hint:
          `Wait for it to finish. If no convey runs as pid ${current.pid} on ${current.host} any more, delete ${lockFile}. ` +
          'Two processes cannot share an embedded store; set CONVEY_STATE_URL to a PostgreSQL database to run several at once.',
        details: { holder: current, lockFile },
      });
    }
    // The holder died without cleaning up (kill -9): its lock is stale.
    try {
      unlinkSync(lockFile);
    } catch {
      // someone else removed it first; try again
    }
  }
  throw new ConveyError('JOB_LOCKED', `cannot take the lock file ${lockFile}`, {
    hint: 'Another convey process is starting on the same folder; try again.',
  });
}

function readHolder(lockFile: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(lockFile, 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

function isAlive(holder: LockHolder, lockFile: string): boolean {
  // A lock from another machine (a shared folder) cannot be checked: treat it as held.
  if (holder.host !== hostname()) return true;
  // Our own pid: held if this process took it. Otherwise it was left by a killed process that
  // had the same pid, as convey has in a container restarted after kill -9 (pid 1 again).
  if (holder.pid === process.pid) return heldLockFiles.has(lockFile);
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function describeLockHolder(holder: LockHolder): string {
  const parts = [`pid ${holder.pid} on ${holder.host}`];
  if (holder.command) parts.push(`"${holder.command}"`);
  if (holder.runId) parts.push(`run ${String(holder.runId)}`);
  parts.push(`since ${holder.startedAt}`);
  return parts.join(', ');
}
