import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, Dispatcher, util as UndiciUtil } from 'undici';
import type { OutboundRequest } from './request.ts';

/**
 * undici's Agent and header parser from their own files, not from the package's index: the index
 * also loads fetch, WebSocket, EventSource, the cache and the mock agent, 60 ms and 8 MB of every
 * run's memory that convey never uses. A layout that moved falls back to the index.
 */
const require = createRequire(import.meta.url);
const undici = ((): { Agent: typeof UndiciAgent; parseHeaders: typeof UndiciUtil.parseHeaders } => {
  try {
    const Agent = require('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
    const { parseHeaders } = require('undici/lib/core/util.js') as typeof UndiciUtil;
    if (typeof Agent === 'function' && typeof parseHeaders === 'function') return { Agent, parseHeaders };
  } catch {
    // below
  }
  const index = require('undici') as typeof import('undici');
  return { Agent: index.Agent, parseHeaders: index.util.parseHeaders };
})();

/**
 * The network seam: one HTTP exchange through an undici dispatcher, nothing more (no retries,
 * no rate: the engine decides those). `dispatcher.dispatch()` with a handler of our own rather
 * than `fetch` or `dispatcher.request()`: the engine needs neither WHATWG objects nor a body
 * stream. fetch on the same kind of Agent measured 0.17–0.23 of the throughput (local node:http
 * server, concurrency 32, 5 runs). request() builds a Readable per response that a 2xx then
 * discards: about 7 µs of convey's CPU per classic request (75 → 68 µs, 200,000 requests).
 */

export interface HttpTimeouts {
  /** TCP (and TLS) connect. Applies only to the dispatcher the client creates itself. */
  connectMs: number;
  /** From the request being written to the response headers arriving. */
  headersMs: number;
  /** Between two chunks of the response body. */
  bodyMs: number;
}

/**
 * undici runs the headers and body timers on a 500 ms tick (lib/util/timers.js, "fast timers"),
 * so they fire up to ~1 s late: measured, a 100 ms headers timeout fired after ~1 s. Fine for
 * the defaults; sub-second values are not honoured precisely.
 *
 * 10 s connect: a healthy endpoint connects in well under a second even across an ocean; longer
 * means a black-holed route. 30 s for headers and body: Optimizely answers in tens of ms, and a
 * proxy that takes longer than 30 s is not going to answer.
 */
export const DEFAULT_TIMEOUTS: Readonly<HttpTimeouts> = Object.freeze({
  connectMs: 10_000,
  headersMs: 30_000,
  bodyMs: 30_000,
});

export type ResponseHeaders = Record<string, string | string[] | undefined>;

export interface HttpResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  /** '' for 1xx–3xx (the body is drained unread); the text, capped, otherwise. */
  readonly body: string;
}

export interface HttpClient {
  /** Resolves with the response (any status) or rejects with undici's error. */
  request(request: OutboundRequest): Promise<HttpResponse>;
  /** Closes the dispatcher if this client created it; an injected one belongs to its owner. */
  close(): Promise<void>;
}

export interface HttpClientOptions {
  /** Injected dispatcher (tests, proxies, a shared Agent); default: an Agent owned by the client. */
  dispatcher?: Dispatcher | undefined;
  /** Keep-alive connections per origin; the engine passes its concurrency so no request waits for a socket. */
  connections: number;
  timeouts: Readonly<HttpTimeouts>;
}

/** An error body is for a person and a state-store column, not for archiving a 3.5 MB echo. */
export const MAX_ERROR_BODY_CHARS = 8192;

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const { timeouts } = options;
  const owned = options.dispatcher === undefined;
  const dispatcher: Dispatcher =
    options.dispatcher ??
    // An Agent keeps one Pool per origin. Pipelining 1: a request that stalls must not hold up
    // the ones queued behind it on the same socket.
    new undici.Agent({
      connections: options.connections,
      pipelining: 1,
      connect: { timeout: timeouts.connectMs },
      headersTimeout: timeouts.headersMs,
      bodyTimeout: timeouts.bodyMs,
    });

  // One-entry cache: the Event API destination posts every batch to the same URL.
  let lastUrl = '';
  let lastSplit = { origin: '', path: '' };

  return {
    request(request) {
      if (request.url !== lastUrl) {
        lastSplit = splitUrl(request.url);
        lastUrl = request.url;
      }
      const { origin, path } = lastSplit;
      return new Promise((resolve, reject) => {
        dispatcher.dispatch(
          {
            origin,
            path,
            method: request.method,
            headers: request.headers,
            body: request.body ?? null,
            // Also per request, so the timeouts hold on an injected dispatcher too.
            headersTimeout: timeouts.headersMs,
            bodyTimeout: timeouts.bodyMs,
          },
          new ResponseHandler(resolve, reject),
        );
      });
    },
    async close() {
      if (owned) await dispatcher.close();
    },
  };
}

/**
 * "https://host:port/path?query" → origin and path, without building a URL object per request
 * (destinations already produce absolute, valid URLs; a fragment is never sent).
 */
export function splitUrl(url: string): { origin: string; path: string } {
  const scheme = url.indexOf('://');
  // Only the part before the query in the message: it ends up in logs and the run history.
  if (scheme < 0) throw new TypeError(`not an absolute URL: ${url.split(/[?#]/, 1)[0]}`);
  const hostStart = scheme + 3;
  let end = url.indexOf('/', hostStart);
  const query = url.indexOf('?', hostStart);
  if (query >= 0 && (end < 0 || query < end)) end = query;
  const hash = url.indexOf('#', hostStart);
  if (hash >= 0 && (end < 0 || hash < end)) end = hash;
  if (end < 0) return { origin: url, path: '/' };
  let path = hash >= end ? url.slice(end, hash) : url.slice(end);
  if (path.charCodeAt(0) !== 47 /* / */) path = `/${path}`;
  return { origin: url.slice(0, end), path };
}

/**
 * undici's handler interface (the one its Client calls natively; see Dispatcher.DispatchHandler):
 * a 2xx/3xx body is dropped as it arrives, an error body kept up to MAX_ERROR_BODY_CHARS, and the
 * headers parsed only when the answer is not a 2xx (the retry policy reads Location and
 * Retry-After, and nothing reads a 2xx's).
 */
class ResponseHandler implements Dispatcher.DispatchHandler {
  #status = 0;
  #headers: ResponseHeaders = {};
  #chunks: Buffer[] | undefined;
  #bytes = 0;
  readonly #resolve: (response: HttpResponse) => void;
  readonly #reject: (error: Error) => void;

  constructor(resolve: (response: HttpResponse) => void, reject: (error: Error) => void) {
    this.#resolve = resolve;
    this.#reject = reject;
  }

  onConnect(): void {}

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.#status = statusCode;
    if (statusCode >= 300) this.#headers = undici.parseHeaders(rawHeaders);
    if (statusCode >= 400) this.#chunks = [];
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (!this.#chunks) return true;
    // At most 4 bytes per character: what is kept still fills the cap.
    if (this.#bytes < MAX_ERROR_BODY_CHARS * 4) this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    return true;
  }

  onComplete(): void {
    this.#resolve({ status: this.#status, headers: this.#headers, body: this.#text() });
  }

  onError(error: Error): void {
    // The status is what counts: a body cut short after a 2xx or 3xx does not undo the answer.
    if (this.#status >= 200 && this.#status < 400) this.onComplete();
    else this.#reject(error);
  }

  #text(): string {
    if (!this.#chunks) return '';
    const text = Buffer.concat(this.#chunks).toString('utf8');
    return text.length > MAX_ERROR_BODY_CHARS ? `${text.slice(0, MAX_ERROR_BODY_CHARS)}…` : text;
  }
}
