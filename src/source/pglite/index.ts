import { existsSync } from 'node:fs';
import { startEmbeddedPostgres } from '../../embedded/pglite.ts';
import type { Engine } from '../engines.ts';
import { classifyPostgresError, postgresDriver } from '../postgres/driver.ts';

/**
 * An embedded PostgreSQL (PGlite) folder, served on a loopback port inside this process so the
 * PostgreSQL driver reads it exactly as it reads a server. One session: one connection.
 */
export const pgliteEngine: Engine = {
  async open(config, context) {
    if (config.client !== 'pglite') throw new Error(`pglite engine given a ${config.client} source`);
    // PGlite would create an empty database in a folder that does not exist: every run would then
    // read nothing and succeed.
    if (!context.create && !existsSync(config.dataDir)) {
      throw Object.assign(new Error(`the embedded database folder ${config.dataDir} does not exist`), { code: 'ENOENT' });
    }
    const embedded = await startEmbeddedPostgres(config.dataDir, context.command);
    const driver = postgresDriver(embedded.connection, {
      capabilities: { location: 'in-process', cancel: false },
      maxConnections: 1,
    });
    return {
      ...driver,
      async close() {
        await driver.close();
        await embedded.close();
      },
    };
  },
  classify: (error) => ((error as { code?: string }).code === 'ENOENT' ? 'unreachable' : classifyPostgresError(error)),
};
