import { once } from 'node:events';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/**
 * An endpoint in front of the receiver that refuses every request with `status` while closed (a
 * token that is wrong, an account without the right), and passes requests through unchanged once
 * opened (someone fixed it). The job keeps the same endpoint, and so the same ledger key, across
 * both: what the receiver got is what arrived, over every run.
 */
export interface Gate {
  /** The gate's origin: put the receiver's path after it. */
  origin: string;
  /** The status every request gets while closed; undefined: passed to the receiver. */
  refuse: number | undefined;
  /** Requests answered with `refuse`. */
  refused: number;
  /** Requests passed to the receiver. */
  passed: number;
  close(): Promise<void>;
}

export async function startGate(upstream: string, refuse: number | undefined): Promise<Gate> {
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (gate.refuse !== undefined) {
        gate.refused++;
        res.writeHead(gate.refuse, { 'content-type': 'application/json' }).end('{"error":"invalid token"}');
        return;
      }
      gate.passed++;
      const { host: _host, connection: _connection, ...headers } = req.headers;
      const forward = request(`${upstream}${req.url ?? '/'}`, { method: req.method ?? 'GET', headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      forward.on('error', () => res.destroy());
      forward.end(Buffer.concat(chunks));
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const gate: Gate = {
    origin: `http://127.0.0.1:${port}`,
    refuse,
    refused: 0,
    passed: 0,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return gate;
}
