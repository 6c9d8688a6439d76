import type { Writable } from 'node:stream';
import type { Logger } from '../log.ts';

/** What a command may touch of the outside world; main.ts builds it from `process`. */
export interface CliIO {
  stdout: Writable;
  stderr: Writable;
  /** True when stdout is a terminal: human output and progress lines; otherwise JSON logs. */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  logger: Logger;
  /** Aborted on the first SIGINT/SIGTERM (the reason is the signal's name); long commands stop gracefully. */
  signal: AbortSignal;
  /** Asks a person at a terminal and returns the answer; undefined when no one is there (CI, a pipe). */
  ask?: (question: string) => Promise<string>;
  /** The process's exit code once the command returns (see exit-codes.ts). */
  setExitCode(code: number): void;
}
