import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import type { EndpointBreaker } from '../delivery/endpoint-breaker.ts';
import type { OutboundRequest, SendResult } from '../delivery/request.ts';

/** Where requests go. The delivery engine (HTTP) is one; an NDJSON file is another. */
export interface Transport {
  send(request: OutboundRequest): Promise<SendResult>;
  /** HTTP requests made so far, retries included. */
  requestCount(): number;
  /** Delivery figures for the summary (rates, retries, throttling), when the transport has them. */
  stats?(): Record<string, unknown>;
  /**
   * Trips when requests in a row fail for a cause that will not pass (a 401, a TLS error): the
   * transport has stopped sending, and the run stops reading (run-job.ts). HTTP transports only.
   */
  readonly breaker?: Pick<EndpointBreaker, 'signal' | 'tripped'>;
  close(): Promise<void>;
}

/** One JSON line per request: what `--dry-run`, `plan --out` and the `file` destination write. */
export function requestLine(request: OutboundRequest): string {
  return JSON.stringify({ method: request.method, url: request.url, ...(request.body === undefined ? {} : { body: JSON.parse(request.body) as unknown }) });
}

/** Writes each request as an NDJSON line (to a file, appending, or to a stream such as stdout). */
export function ndjsonTransport(target: string | Writable): Transport {
  let stream: Writable;
  let owned: WriteStream | undefined;
  if (typeof target === 'string') {
    mkdirSync(dirname(target), { recursive: true });
    owned = createWriteStream(target, { flags: 'a' });
    stream = owned;
  } else {
    stream = target;
  }
  let count = 0;
  return {
    async send(request) {
      count++;
      if (!stream.write(requestLine(request) + '\n')) await new Promise((resolve) => stream.once('drain', resolve));
      return { kind: 'delivered', status: 200, attempts: 1 };
    },
    requestCount: () => count,
    async close() {
      if (owned) await new Promise<void>((resolve, reject) => owned.end((error?: Error | null) => (error ? reject(error) : resolve())));
    },
  };
}
