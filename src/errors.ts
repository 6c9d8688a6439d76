/**
 * Every error convey raises on purpose is a ConveyError with a stable `code` (for scripts and
 * tests), a message that says what went wrong, and a `hint` that says how to fix it. Anything
 * else thrown from a dependency is normalised once, by `toConveyError`, at the command's edge.
 * A conversion that could not be delivered is not an error of the run: its stable key is the
 * failure's `cause` (delivery/failure.ts), reported in the run's summary.
 */

export type ErrorCode =
  /** A config file or job settings file is missing, unreadable or invalid. Nothing was sent. */
  | 'CONFIG_INVALID'
  /** The job's SQL does not return what the destination needs. Nothing was sent. */
  | 'MAPPING_INVALID'
  /** The source database refused the job's SQL or could not be reached. */
  | 'SOURCE_ERROR'
  /** The source's engine needs a driver package that is not installed. Nothing was sent. */
  | 'SOURCE_DRIVER_MISSING'
  /** The state store could not be reached, or its schema is not migrated. */
  | 'STATE_ERROR'
  /** Another run holds the job (or the embedded state store). Nothing was sent. */
  | 'JOB_LOCKED'
  /** A command-line argument is wrong. */
  | 'USAGE'
  /** The run was stopped by a signal. */
  | 'INTERRUPTED'
  /** A bug: an error convey did not expect. */
  | 'INTERNAL';

export class ConveyError extends Error {
  override readonly name = 'ConveyError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }
}

export function isConveyError(error: unknown, code?: ErrorCode): error is ConveyError {
  return error instanceof ConveyError && (code === undefined || error.code === code);
}

/** Normalise anything thrown into a ConveyError, keeping the original as `cause`. */
export function toConveyError(error: unknown): ConveyError {
  if (error instanceof ConveyError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ConveyError('INTERNAL', `unexpected error: ${message}`, {
    cause: error,
    hint: 'This is a bug in convey. Re-run with CONVEY_LOG_LEVEL=debug and report the stack trace.',
  });
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
