import { request, type IncomingMessage } from 'node:http';
import { serveOnLoopback } from './loopback-server.ts';

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
  const server = await serveOnLoopback((req: IncomingMessage, res) => {
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
  const gate: Gate = { origin: server.origin, refuse, refused: 0, passed: 0, close: () => server.close() };
  return gate;
}
