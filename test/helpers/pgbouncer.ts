import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './project.ts';

/** Debian's PgBouncer (`apt-get install pgbouncer`; .ci/run installs it): tests that need it are registered only when it is there. */
export const PGBOUNCER = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((path) => existsSync(path));

/**
 * A PgBouncer of the test's own on a free loopback port, in front of the PostgreSQL of `url`, in
 * `mode` (transaction or session). It refuses to run as root: started as root, it runs as postgres.
 */
export async function startPgBouncer(url: string, mode: 'transaction' | 'session'): Promise<{ url: string; stop(): void }> {
  const target = new URL(url);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'convey-pgbouncer-'));
  chmodSync(dir, 0o777);
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    [
      '[databases]',
      `* = host=${target.hostname} port=${target.port || 5432} user=${target.username || 'postgres'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'auth_type = any',
      `pool_mode = ${mode}`,
      'unix_socket_dir =',
      `logfile = ${join(dir, 'log')}`,
      `pidfile = ${join(dir, 'pid')}`,
      'default_pool_size = 4',
    ].join('\n'),
  );
  chmodSync(ini, 0o644);
  const asRoot = process.getuid?.() === 0;
  const result = spawnSync(PGBOUNCER!, ['-d', ...(asRoot ? ['-u', 'postgres'] : []), ini], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`pgbouncer did not start: ${result.stderr}`);
  // -d returns once the daemon is forked, before it listens.
  await waitFor(() => new Promise<true | undefined>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(undefined));
  }), `pgbouncer to listen on ${port}`);
  const through = new URL(url);
  through.hostname = '127.0.0.1';
  through.port = String(port);
  return {
    url: through.toString(),
    stop() {
      try {
        process.kill(Number(readFileSync(join(dir, 'pid'), 'utf8')), 'SIGTERM');
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
