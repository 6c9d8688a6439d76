import type { Failure } from './failure.ts';

/**
 * What the delivery engine sends and what it reports back. Destinations build requests; the
 * engine knows nothing of conversions, only of HTTP.
 */
export interface OutboundRequest {
  method: 'GET' | 'POST';
  /** Absolute URL, e.g. `https://logx.optimizely.com/v1/events`. */
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export type SendResult =
  /** 2xx: the endpoint took it. */
  | { kind: 'delivered'; status: number; attempts: number }
  /** 400, 413, 422: the conversions are at fault; retrying cannot help. */
  | { kind: 'refused'; status: number; body: string; attempts: number }
  /** Retries ran out (network errors, timeouts, 429, 5xx), or a 3xx, other 4xx, TLS or DNS error: try again in a later run. */
  | { kind: 'failed'; error: string; status?: number; attempts: number; failure: Failure }
  /** Never left (the run is stopping): the caller releases it for the next run. */
  | { kind: 'cancelled'; attempts: number };
