import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { buildProgram, reportError } from '../../src/cli/main.ts';
import type { CliIO } from '../../src/cli/io.ts';
import { createLogger } from '../../src/log.ts';
import { testDatabases, type TestDatabases } from './databases.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A throwaway convey project: a temporary folder with config/, jobs/ and its own databases
 * (a PostgreSQL database per project under TEST_DATABASE_URL, else embedded PGlite folders).
 */
export interface TestProject {
  dir: string;
  db: TestDatabases;
  /** The environment convey runs with (CONVEY_STATE_URL set when on PostgreSQL). */
  env: NodeJS.ProcessEnv;
  writeJob(name: string, sql: string, settings: Record<string, unknown>): void;
  /** Runs a convey command in this process. */
  cli(args: string[], options?: { env?: NodeJS.ProcessEnv; signal?: AbortSignal; ask?: (question: string) => Promise<string> }): Promise<CliResult>;
  /** Starts a convey command as a child process (for kill -9 and overlap tests). */
  spawn(args: string[], options?: { env?: NodeJS.ProcessEnv }): SpawnedCli;
  close(): Promise<void>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for --json). */
  json<T = Record<string, unknown>>(): T;
}

export interface SpawnedCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

export async function createTestProject(): Promise<TestProject> {
  const dir = mkdtempSync(join(tmpdir(), 'convey-test-'));
  mkdirSync(join(dir, 'config'), { recursive: true });
  mkdirSync(join(dir, 'jobs'), { recursive: true });
  const db = await testDatabases(dir);
  writeFileSync(join(dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse: db.sourceConfig } }, null, 2));
  // One cache of the embedded engine's image for every test project (convey test, new): made once, not per project.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, CONVEY_CACHE_DIR: join(tmpdir(), 'convey-test-cache'), ...(db.stateUrl ? { CONVEY_STATE_URL: db.stateUrl } : {}) };

  return {
    dir,
    db,
    env,
    writeJob(name, sql, settings) {
      writeFileSync(join(dir, 'jobs', `${name}.sql`), sql);
      writeFileSync(join(dir, 'jobs', `${name}.json`), JSON.stringify({ source: 'warehouse', start: '2026-01-01T00:00:00Z', ...settings }, null, 2));
    },
    async cli(args, options = {}) {
      const out = capture();
      const err = capture();
      let code = 0;
      const io: CliIO = {
        stdout: out.stream,
        stderr: err.stream,
        isTTY: false,
        env: { ...env, ...options.env },
        cwd: dir,
        logger: createLogger({ level: 'info', format: 'json', write: (line) => err.stream.write(line + '\n') }),
        signal: options.signal ?? new AbortController().signal,
        setExitCode: (c) => {
          code = c;
        },
        ...(options.ask ? { ask: options.ask } : {}),
      };
      try {
        await buildProgram(io).parseAsync(args, { from: 'user' });
      } catch (error) {
        code = (error as { exitCode?: number }).exitCode ?? reportError(io, error);
      }
      const stdout = out.text();
      return { code, stdout, stderr: err.text(), json: <T>() => JSON.parse(stdout) as T };
    },
    spawn(args, options = {}) {
      // tsx is resolved from this repository: the child runs in the project's temporary folder.
      const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(repoRoot, 'src', 'cli', 'bin.ts'), ...args], {
        cwd: dir,
        env: { ...env, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, stdout: () => stdout, stderr: () => stderr, exited };
    },
    async close() {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function capture(): { stream: Writable; text(): string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/**
 * Polls until `probe` returns a value (for waiting on a child process without fixed sleeps). The
 * limit only bounds a test that is broken: with several suites running at once on the 2-core
 * machine (load average 12–19), a child convey (tsx, then the embedded PostgreSQL) took over 20 s
 * to send its first request, and three tests failed on that alone.
 */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
