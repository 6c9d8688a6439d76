import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveOnLoopback } from './loopback-server.ts';

export interface Captured {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  text: string;
}

/**
 * A server on 127.0.0.1:0 that keeps every request it gets, for the notification tests: a webhook,
 * a heartbeat service, an OTLP collector. `answer` picks the response: 'ok', 'fail' (500), or
 * 'stall' (never answers; the sockets are destroyed on close).
 */
export interface CaptureServer {
  url: string;
  requests: Captured[];
  answer: 'ok' | 'fail' | 'stall';
  /** Resolves when `n` requests have arrived. */
  received(n: number): Promise<Captured[]>;
  close(): Promise<void>;
}

export async function captureServer(answer: CaptureServer['answer'] = 'ok'): Promise<CaptureServer> {
  const requests: Captured[] = [];
  const waiters: Array<{ n: number; resolve: (r: Captured[]) => void }> = [];
  const state = { answer };
  const server = await serveOnLoopback((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, text: body.toString('utf8') });
      for (const w of waiters.filter((w) => requests.length >= w.n)) w.resolve(requests.slice());
      if (state.answer === 'stall') return;
      res.writeHead(state.answer === 'ok' ? 200 : 500, { 'content-type': 'text/plain' }).end(state.answer === 'ok' ? 'OK' : 'no_service');
    });
  });
  return {
    url: server.origin,
    requests,
    get answer() {
      return state.answer;
    },
    set answer(value) {
      state.answer = value;
    },
    received: (n) => (requests.length >= n ? Promise.resolve(requests.slice()) : new Promise((resolve) => waiters.push({ n, resolve }))),
    close: () => server.close(),
  };
}
