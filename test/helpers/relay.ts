import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of a database server, that a test can break: cut the
 * connection that is reading a window after some bytes of its result, and refuse connections
 * while the source is "down". Only loopback addresses are involved.
 */
export interface Relay {
  port: number;
  /**
   * Once: after the client sends a statement containing `marker`, cut that connection when `bytes`
   * more have come back from the server. `thenDown` leaves the source down afterwards.
   */
  cutDuring(marker: string, bytes: number, options?: { thenDown?: boolean }): void;
  /** Connections cut so far. */
  cuts(): number;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

export async function startRelay(target: { host: string; port: number }): Promise<Relay> {
  let plan: { marker: string; bytes: number; thenDown: boolean } | undefined;
  let isDown = false;
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (isDown) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    let watching = false;
    let returned = 0;
    const cut = (): void => {
      cuts++;
      if (plan?.thenDown) isDown = true;
      plan = undefined;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (data: Buffer) => {
      if (plan && !watching && data.includes(plan.marker)) watching = true;
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (watching && plan) {
        returned += data.length;
        if (returned >= plan.bytes) {
          // Half of this chunk reaches the client: the cut falls inside a row, as a real one would.
          client.write(data.subarray(0, Math.floor(data.length / 2)), cut);
          return;
        }
      }
      client.write(data);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cutDuring(marker, bytes, options = {}) {
      plan = { marker, bytes, thenDown: options.thenDown ?? false };
    },
    cuts: () => cuts,
    down() {
      isDown = true;
      for (const socket of sockets) socket.destroy();
    },
    up() {
      isDown = false;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
