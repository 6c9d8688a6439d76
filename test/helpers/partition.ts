import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP relay in front of PostgreSQL, one per runner (relay.ts is the source tests' own, which
 * cuts a connection mid-result), so a test can cut that runner off the way a
 * network partition does: nothing passes in either direction, and no connection ends (neither side
 * learns anything from TCP). `cut` can also make the server notice, after a while, that the client
 * is gone (as PostgreSQL does through TCP keepalives): the server-side sockets close, the server
 * ends those sessions and frees their locks, while the runner still hears nothing. `heal` lets
 * traffic through again; a connection the server ended is reset, as the server's TCP would answer
 * the first packet that reaches it. Loopback only.
 */
export interface Partition {
  /** `url` with its host and port replaced by the relay's. */
  through(url: string): string;
  cut(options?: { serverNoticesAfterMs?: number }): void;
  /** Resolves when the server side of the cut connections has been closed (wall-clock ms). */
  severed(): Promise<number>;
  heal(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket | undefined;
  toServer: Buffer[];
  toClient: Buffer[];
  severed: boolean;
}

export async function startPartition(target: { host: string; port: number }): Promise<Partition> {
  const pairs = new Set<Pair>();
  let cut = false;
  let severTimer: NodeJS.Timeout | undefined;
  let severedAt: ((at: number) => void) | undefined;
  let severedPromise = new Promise<number>((resolve) => (severedAt = resolve));

  const flush = (pair: Pair): void => {
    if (cut || pair.severed || !pair.server) return;
    for (const chunk of pair.toServer.splice(0)) pair.server.write(chunk);
    for (const chunk of pair.toClient.splice(0)) pair.client.write(chunk);
  };
  const openServer = (pair: Pair): void => {
    const server = connect(target.port, target.host);
    pair.server = server;
    server.on('data', (chunk: Buffer) => {
      pair.toClient.push(chunk);
      flush(pair);
    });
    server.on('error', () => undefined);
    server.on('close', () => {
      if (!cut && !pair.severed) pair.client.destroy();
    });
    server.on('connect', () => flush(pair));
  };

  const relay: Server = createServer((client) => {
    const pair: Pair = { client, server: undefined, toServer: [], toClient: [], severed: false };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      pair.toServer.push(chunk);
      flush(pair);
    });
    client.on('error', () => undefined);
    client.on('close', () => {
      // During a cut the client's goodbye is lost with everything else: the server learns of it
      // only when it notices the silence (below).
      if (cut) return;
      pairs.delete(pair);
      pair.server?.destroy();
    });
    // A connection opened during a cut reaches nothing until the cut heals.
    if (!cut) openServer(pair);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const port = (relay.address() as { port: number }).port;

  return {
    through(url) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut(options = {}) {
      cut = true;
      if (options.serverNoticesAfterMs !== undefined) {
        severTimer = setTimeout(() => {
          for (const pair of pairs) {
            pair.severed = true;
            pair.server?.destroy();
          }
          severedAt?.(Date.now());
        }, options.serverNoticesAfterMs);
      }
    },
    severed: () => severedPromise,
    heal() {
      cut = false;
      clearTimeout(severTimer);
      for (const pair of [...pairs]) {
        if (pair.client.destroyed) {
          pairs.delete(pair);
          pair.server?.destroy();
        } else if (pair.severed) pair.client.resetAndDestroy();
        else if (!pair.server) openServer(pair);
        else flush(pair);
      }
      severedPromise = new Promise<number>((resolve) => (severedAt = resolve));
    },
    async close() {
      clearTimeout(severTimer);
      for (const pair of pairs) {
        pair.client.destroy();
        pair.server?.destroy();
      }
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    },
  };
}
