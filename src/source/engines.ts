import type { SourceConfig } from '../config/project.ts';
import type { Driver, ErrorKind } from './driver.ts';
import type { ReviewEngine } from './review.ts';

/** What an engine's folder exports: how to open it, and how to read its errors before it is open. */
export interface Engine {
  open(config: SourceConfig, context: OpenContext): Promise<Driver>;
  classify(error: unknown): ErrorKind;
}

export interface OpenContext {
  /** The command line, recorded by embedded engines in their lock file. */
  command: string;
  /** Embedded engines: create the database when it does not exist (the demo seeds one). */
  create?: boolean;
  /**
   * Every statement on one connection, so that a transaction and its temporary tables hold across
   * them (`convey test --on-source`); nothing is cancelled from a second connection.
   */
  session?: boolean;
}

/**
 * One line per engine. Each is imported only when a job reads from it: DuckDB's binary alone is
 * 70 MB, and a jobs repository installs only the driver packages it uses (`package` says which).
 * `review` is what `convey test` and `convey new` need of it (source/review.ts).
 */
export const ENGINES: Record<SourceConfig['client'], { package?: string; load(): Promise<Engine>; review(): Promise<ReviewEngine> }> = {
  pg: { load: async () => (await import('./postgres/index.ts')).postgresEngine, review: async () => (await import('./postgres/review.ts')).postgresReview },
  pglite: { load: async () => (await import('./pglite/index.ts')).pgliteEngine, review: async () => (await import('./postgres/review.ts')).postgresReview },
  duckdb: {
    package: '@duckdb/node-api',
    load: async () => (await import('./duckdb/index.ts')).duckdbEngine,
    review: async () => (await import('./duckdb/review.ts')).duckdbReview,
  },
  mysql: { package: 'mysql2', load: async () => (await import('./mysql/index.ts')).mysqlEngine, review: async () => (await import('./mysql/review.ts')).mysqlReview },
};
