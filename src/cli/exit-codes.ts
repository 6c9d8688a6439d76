import { toConveyError, type ErrorCode } from '../errors.ts';
import type { RunStatus } from '../state/sql/runs.ts';
import type { RunWarning, WarningCheck } from '../verdict/warning.ts';

/**
 * Exit codes, the whole contract with cron and CI (README "Exit codes" repeats this table):
 *
 *   0   done: everything in the window was sent, already sent, or rejected (within --max-rejects)
 *   1   the run finished, but conversions failed after every retry (the next run sends them
 *       first), it stopped early because the endpoint refused every request for a cause that
 *       will not pass (delivery/endpoint-breaker.ts), or there were more rejects than --max-rejects
 *   2   bad config or mapping (settings, SQL, columns, arguments): nothing was sent
 *   3   the source database refused or could not be reached
 *   4   the state store could not be reached or prepared
 *   5   only with --fail-on: the run succeeded, but the verdict (src/verdict/) found a warning
 *       that --fail-on names. 5 is the first code no other outcome uses; a run that also failed
 *       exits 1, which says more
 *   70  a bug in convey
 *   75  another run holds the job (or the embedded store): nothing was sent; try later
 *   130 stopped by SIGINT, 143 by SIGTERM: requests in flight were finished and recorded; the
 *       next run continues
 */
export const ExitCode = {
  OK: 0,
  FAILED: 1,
  CONFIG: 2,
  SOURCE: 3,
  STATE: 4,
  WARNINGS: 5,
  INTERNAL: 70,
  LOCKED: 75,
  SIGINT: 130,
  SIGTERM: 143,
} as const;

export function exitCodeForError(code: ErrorCode): number {
  switch (code) {
    case 'CONFIG_INVALID':
    case 'MAPPING_INVALID':
    case 'SOURCE_DRIVER_MISSING':
    case 'USAGE':
      return ExitCode.CONFIG;
    case 'SOURCE_ERROR':
      return ExitCode.SOURCE;
    case 'STATE_ERROR':
      return ExitCode.STATE;
    case 'JOB_LOCKED':
      return ExitCode.LOCKED;
    case 'INTERRUPTED':
      return ExitCode.SIGINT;
    case 'INTERNAL':
      return ExitCode.INTERNAL;
  }
}

/** The exit code of a command that stopped on `error`: 130/143 by the signal for an interruption. */
export function exitCodeOf(error: unknown, signal: NodeJS.Signals | undefined): number {
  const code = toConveyError(error).code;
  return code === 'INTERRUPTED' ? exitCodeForStatus('interrupted', signal) : exitCodeForError(code);
}

export function exitCodeForStatus(status: RunStatus, signal: NodeJS.Signals | undefined): number {
  switch (status) {
    case 'succeeded':
      return ExitCode.OK;
    case 'interrupted':
      return signal === 'SIGTERM' ? ExitCode.SIGTERM : ExitCode.SIGINT;
    default:
      return ExitCode.FAILED;
  }
}

/**
 * A finished run's exit code. Warnings change it only when asked (`--fail-on warnings`, or
 * per check): a quiet night must not page anyone who did not choose that.
 */
export function exitCodeForRun(
  run: { status: RunStatus; warnings: readonly RunWarning[] },
  signal: NodeJS.Signals | undefined,
  failOn: ReadonlySet<WarningCheck> | undefined,
): number {
  const code = exitCodeForStatus(run.status, signal);
  if (code === ExitCode.OK && failOn && run.warnings.some((w) => failOn.has(w.check))) return ExitCode.WARNINGS;
  return code;
}
