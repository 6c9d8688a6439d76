import type { SourceConfig } from '../config/project.ts';
import { ConveyError, errorMessage } from '../errors.ts';
import type { Dialect, Driver, ErrorKind, Param, SourceCapabilities, SourceRow, StreamOptions } from './driver.ts';
import { ENGINES, type OpenContext } from './engines.ts';
import { bindNamed } from './sql-text.ts';

/**
 * A job's source as the pipeline sees it, whatever the engine: SQL written with `:name`
 * parameters, bound in the engine's own syntax, and every failure a ConveyError whose `kind`
 * says whose fault it is (the mapping's, exit 2; the source's, exit 3).
 */
export interface Source {
  readonly name: string;
  readonly client: SourceConfig['client'];
  readonly dialect: Dialect;
  readonly capabilities: SourceCapabilities;
  /** How long a window's query may wait for the sender before the rest is spooled (read-window.ts). */
  readonly spoolAfterMs: number;
  columns(sql: string, params: Readonly<Record<string, Param>>): Promise<string[]>;
  stream(sql: string, params: Readonly<Record<string, Param>>, options: StreamOptions): AsyncIterable<SourceRow[]>;
  execute(sql: string, params?: Readonly<Record<string, Param>>): Promise<{ rows: SourceRow[]; columns: string[] }>;
  close(): Promise<void>;
}

/** A failure of the source: `kind` tells the mapping's fault from the source's. */
export class SourceError extends ConveyError {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options: { hint: string; cause: unknown },
  ) {
    super('SOURCE_ERROR', message, { ...options, details: { kind } });
  }
}

export async function openSource(config: SourceConfig, context: OpenContext): Promise<Source> {
  const entry = ENGINES[config.client];
  const engine = await entry.load().catch((error: unknown) => {
    const code = (error as { code?: string }).code;
    if (entry.package && (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && errorMessage(error).includes(entry.package)) {
      throw new ConveyError('SOURCE_DRIVER_MISSING', `source "${config.name}" (client "${config.client}", ${config.file}) needs the package ${entry.package}, which is not installed`, {
        hint: `Add it to the project that runs convey: npm install ${entry.package}`,
        cause: error,
      });
    }
    throw error;
  });

  let driver: Driver;
  try {
    driver = await engine.open(config, context);
  } catch (error) {
    if (error instanceof ConveyError) throw error;
    throw fail(config, engine.classify(error), 'cannot be opened', error);
  }
  return sourceOver(config, driver);
}

/**
 * A Source around an open driver: SQL bound in its dialect, and its errors read as the mapping's or
 * the source's fault. openSource uses it; so do `convey test`'s fixture sessions (source/review.ts),
 * which open their own embedded engine.
 */
export function sourceOver(config: SourceConfig, driver: Driver): Source {
  const bind = (sql: string, params: Readonly<Record<string, Param>>) => bindNamed(sql, params, driver.dialect);
  const refused = (error: unknown): SourceError => {
    if (error instanceof SourceError) return error;
    const failure = fail(config, driver.classify(error), 'refused the query', error);
    const hint = driver.hint?.(error);
    return hint ? new SourceError(failure.kind, failure.message, { hint, cause: error }) : failure;
  };

  return {
    name: config.name,
    client: config.client,
    dialect: driver.dialect,
    capabilities: driver.capabilities,
    spoolAfterMs: config.spoolAfterMs,
    async columns(sql, params) {
      const { text, values } = bind(sql, params);
      return driver.columns(text, values).catch((error: unknown) => {
        throw refused(error);
      });
    },
    async *stream(sql, params, options) {
      const { text, values } = bind(sql, params);
      try {
        yield* driver.stream(text, values, options);
      } catch (error) {
        throw refused(error);
      }
    },
    async execute(sql, params = {}) {
      const { text, values } = bind(sql, params);
      return driver.execute(text, values).catch((error: unknown) => {
        throw refused(error);
      });
    },
    close: () => driver.close(),
  };
}

function fail(config: SourceConfig, kind: ErrorKind, what: string, error: unknown): SourceError {
  return new SourceError(kind, `source "${config.name}" ${kind === 'unreachable' ? 'cannot be reached' : what}: ${errorMessage(error)}`, { hint: hintFor(kind, config), cause: error });
}

function hintFor(kind: ErrorKind, config: SourceConfig): string {
  switch (kind) {
    case 'mapping':
      return "Run the job's SQL in your SQL client with :window_start and :window_end replaced by two timestamps to see the problem.";
    case 'unreachable':
      return `Check the connection of source "${config.name}" in ${config.file} (and the environment variables it reads).`;
    case 'connection-lost':
      return `The connection to source "${config.name}" dropped during the read. Nothing read after the last recorded batch is lost: the next run reads it again.`;
    case 'timeout':
      return `The query ran longer than statementTimeoutMs of source "${config.name}" in ${config.file}: raise it, or narrow the window (backfill --chunk).`;
    case 'other':
      return `Check source "${config.name}" (${config.file}); the message above is the engine's.`;
  }
}
