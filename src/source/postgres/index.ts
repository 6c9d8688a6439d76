import type { Engine } from '../engines.ts';
import { classifyPostgresError, postgresDriver } from './driver.ts';

/** A PostgreSQL server: a `connection` URL or node-postgres connection object. */
export const postgresEngine: Engine = {
  async open(config, context) {
    if (config.client !== 'pg') throw new Error(`postgres engine given a ${config.client} source`);
    const connection = typeof config.connection === 'string' ? { connectionString: config.connection } : { ...config.connection };
    return postgresDriver(connection, {
      capabilities: { location: 'server', cancel: true },
      // One connection reads the window; a second one can cancel it (but a session has one).
      maxConnections: context.session ? 1 : Math.max(2, config.poolMax ?? 2),
      ...(config.statementTimeoutMs ? { statementTimeoutMs: config.statementTimeoutMs } : {}),
    });
  },
  classify: classifyPostgresError,
};
