import type { Agent } from 'undici';
import type { Clock } from '../time/clock.ts';

export interface NotifyHttp {
  /** Sends one request; resolves on a 2xx, rejects with a message that names no secret otherwise. */
  send(url: string, init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string | Uint8Array }): Promise<void>;
  close(): Promise<void>;
}

/** Kept from an error answer, for the log: enough to read a chat service's "invalid_payload". */
const ANSWER_CHARS = 300;

/**
 * HTTP for notifications: undici, one Agent for the command, and a deadline on the injected clock
 * for the whole exchange (connect, headers, body), so a channel that never answers costs at most
 * `timeoutMs` and tests move time instead of waiting. undici's own timeouts stay as a backstop.
 * undici's index is loaded with the first notification, not with the command: 5 MB of heap
 * (fetch, WebSocket, the cache) that a run with nothing to notify would carry to its end.
 */
export function createNotifyHttp(options: { clock: Clock; timeoutMs: number }): NotifyHttp {
  const { clock, timeoutMs } = options;
  let undici: Promise<typeof import('undici')> | undefined;
  let agent: Agent | undefined;
  return {
    async send(url, init) {
      const { Agent, request } = await (undici ??= import('undici'));
      agent ??= new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      const stop = new AbortController();
      void clock.sleep(timeoutMs, stop.signal).then(
        () => stop.abort(new Error(`no answer within ${timeoutMs / 1000} s`)),
        () => undefined,
      );
      try {
        const answer = await request(url, {
          dispatcher: agent,
          method: init.method ?? 'POST',
          headers: init.headers ?? {},
          body: init.body ?? null,
          signal: stop.signal,
        });
        const text = await answer.body.text();
        if (answer.statusCode < 200 || answer.statusCode >= 300) {
          throw new Error(`answered ${answer.statusCode}${text ? `: ${text.slice(0, ANSWER_CHARS)}` : ''}`);
        }
      } catch (error) {
        // undici reports an abort as its own error; the deadline's reason says more.
        if (stop.signal.aborted && stop.signal.reason instanceof Error) throw stop.signal.reason;
        throw error;
      } finally {
        if (!stop.signal.aborted) stop.abort();
      }
    },
    async close() {
      // destroy, not close: a keep-alive socket to a chat service must not hold the process.
      await agent?.destroy();
    },
  };
}

/** A URL for logs: its origin only. Webhook and ping URLs carry their secret in the path. */
export function originOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(invalid URL)';
  }
}
