import type { HttpResponse } from './http-client.ts';

/**
 * Why a request failed, in terms an on-call engineer can act on: a stable key (`cause`) to group
 * and alert on, the kind of trouble, the HTTP status or the error code, the first bytes of the
 * answer or the error's message, and whether trying again can help. The retry table
 * (retry-policy.ts) decides what is retried; this file only names what happened.
 */

export type FailureKind = 'http' | 'tls' | 'dns' | 'network' | 'timeout' | 'other';

/** One failed attempt, classified. */
export interface AttemptFailure {
  /** Stable key: `http_500`, `tls_DEPTH_ZERO_SELF_SIGNED_CERT`, `dns_ENOTFOUND`, `timeout_headers`, … */
  readonly cause: string;
  readonly kind: FailureKind;
  readonly status?: number;
  readonly code?: string;
  /** The first MESSAGE_BYTES of the answer, or the error's message. */
  readonly message: string;
  /** Trying again (this run or the next) can succeed without anyone changing anything. */
  readonly retryable: boolean;
}

/** A request's last failure as the delivery engine reports it: also where and when. */
export interface Failure extends AttemptFailure {
  /** Origin and path only: no user info, and no query (the classic GET's query is the conversion). */
  readonly endpoint: string;
  /** Epoch ms of the failed attempt. */
  readonly at: number;
}

/** Enough of an answer to recognise it (an error page's title, a JSON error), short enough for a log line. */
export const MESSAGE_BYTES = 200;

/**
 * Certificate and handshake errors: OpenSSL's verification codes as Node reports them, and
 * Node's own ERR_TLS_* / ERR_SSL_* codes (checked by prefix). Never retried: the same
 * certificate is presented on the next attempt.
 */
const TLS_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'EPROTO',
]);

/** getaddrinfo's answers: the name does not exist (ENOTFOUND, EAI_NONAME, EAI_FAIL) or no answer yet (EAI_AGAIN). */
const DNS_CODES: ReadonlySet<string> = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL', 'EAI_NODATA']);

/** Timeouts, with the short name their cause key uses. */
const TIMEOUT_CODES: ReadonlyMap<string, string> = new Map([
  ['UND_ERR_CONNECT_TIMEOUT', 'connect'],
  ['UND_ERR_HEADERS_TIMEOUT', 'headers'],
  ['UND_ERR_BODY_TIMEOUT', 'body'],
  ['ETIMEDOUT', 'connect'],
]);

/** The connection failed or broke. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

export function kindOfCode(code: string | undefined): FailureKind {
  if (code === undefined) return 'other';
  if (TIMEOUT_CODES.has(code)) return 'timeout';
  if (NETWORK_CODES.has(code)) return 'network';
  if (DNS_CODES.has(code)) return 'dns';
  if (TLS_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code.startsWith('CERT_')) return 'tls';
  return 'other';
}

/** The code of a thrown error, looking through `cause` and AggregateError (Node's happy-eyeballs connect wraps the per-address errors). */
export function errorCode(error: unknown): string | undefined {
  return coded(error)?.code;
}

function coded(error: unknown): { code: string; message: string } | undefined {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return { code, message: String((e as { message?: unknown }).message ?? '') };
    if (e instanceof AggregateError && e.errors.length > 0) e = e.errors[0];
    else e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A thrown error as a failure; `retryable` is the retry table's verdict on it. */
export function errorFailure(error: unknown, retryable: boolean): AttemptFailure {
  const found = coded(error);
  const code = found?.code;
  const kind = kindOfCode(code);
  const message = firstBytes((found?.message || (error instanceof Error ? error.message : String(error))).trim());
  const cause = kind === 'timeout' ? `timeout_${TIMEOUT_CODES.get(code!)}` : code === undefined ? 'other' : `${kind}_${code}`;
  return code === undefined ? { cause, kind, message, retryable } : { cause, kind, code, message, retryable };
}

/** An HTTP answer that was not a delivery (3xx, 4xx, 5xx) as a failure. */
export function statusFailure(response: HttpResponse, retryable: boolean): AttemptFailure {
  const status = response.status;
  let message = firstBytes(response.body.trim());
  if (status < 400) {
    const location = response.headers['location'];
    const to = Array.isArray(location) ? location[0] : location;
    message = to ? `redirect to ${endpointOf(to)}` : 'redirect';
  }
  return { cause: `http_${status}`, kind: 'http', status, message, retryable };
}

/**
 * `scheme://host:port/path` of a URL: user info and query string dropped, since either may carry
 * a key (and a classic request's query is the conversion itself). Not a URL parser: destinations
 * produce absolute URLs, and this runs once per failed request.
 */
export function endpointOf(url: string): string {
  const scheme = url.indexOf('://');
  if (scheme < 0) return url.split(/[?#]/, 1)[0]!;
  let end = url.length;
  for (const mark of ['?', '#']) {
    const at = url.indexOf(mark, scheme + 3);
    if (at >= 0 && at < end) end = at;
  }
  const slash = url.indexOf('/', scheme + 3);
  const hostEnd = slash >= 0 && slash < end ? slash : end;
  const at = url.lastIndexOf('@', hostEnd);
  const host = at > scheme ? url.slice(at + 1, hostEnd) : url.slice(scheme + 3, hostEnd);
  return `${url.slice(0, scheme + 3)}${host}${url.slice(hostEnd, end)}`;
}

/** The first MESSAGE_BYTES bytes of a text in UTF-8, never cutting a character in two. */
export function firstBytes(text: string, max = MESSAGE_BYTES): string {
  if (text.length <= max / 4) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let end = max;
  // Back up over continuation bytes (10xxxxxx) to the start of the character that was cut.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}…`;
}

/** A few words for what went wrong, for a headline. */
export function describeCause(f: Pick<AttemptFailure, 'kind' | 'status' | 'code'>): string {
  switch (f.kind) {
    case 'http':
      if (f.status === 401 || f.status === 403) return `the endpoint refused convey's requests (HTTP ${f.status})`;
      if (f.status === 404 || f.status === 405 || f.status === 410) return `no such endpoint (HTTP ${f.status})`;
      if (f.status !== undefined && f.status < 400) return `the endpoint redirects (HTTP ${f.status})`;
      if (f.status === 429) return 'the endpoint throttled every attempt (HTTP 429)';
      if (f.status !== undefined && f.status >= 500) return `the endpoint failed every attempt (HTTP ${f.status})`;
      return `the endpoint refuses every request (HTTP ${f.status})`;
    case 'tls':
      if (f.code === 'CERT_HAS_EXPIRED' || f.code === 'CERT_NOT_YET_VALID') return `the endpoint's TLS certificate is out of date (${f.code})`;
      if (f.code === 'ERR_TLS_CERT_ALTNAME_INVALID' || f.code === 'HOSTNAME_MISMATCH') return `the endpoint's TLS certificate is for another host name (${f.code})`;
      if (f.code !== undefined && (f.code.startsWith('ERR_SSL_') || f.code === 'EPROTO')) return `the TLS handshake failed (${f.code})`;
      return `the endpoint's TLS certificate is not trusted (${f.code})`;
    case 'dns':
      return f.code === 'EAI_AGAIN' ? 'DNS did not answer (EAI_AGAIN)' : `the endpoint's host name does not resolve (${f.code})`;
    case 'network':
      return f.code === 'ECONNREFUSED' ? 'nothing accepts connections at the endpoint (ECONNREFUSED)' : `the connection failed (${f.code})`;
    case 'timeout':
      return `the endpoint did not answer in time (${f.code})`;
    case 'other':
      return f.code ? `an error convey does not classify (${f.code})` : 'an error convey does not classify';
  }
}

/** What to do about a failure, for the summary, the log and `convey status`. */
export function actionFor(f: Pick<AttemptFailure, 'kind' | 'status' | 'code' | 'retryable'>, job: string): string {
  return `${fixFor(f)} The conversions are kept: the next run sends them first (convey retry ${job} sends them now).`;
}

/** What someone must check or change; also the end of a stopped run's headline (failures.ts). */
export function fixFor(f: Pick<AttemptFailure, 'kind' | 'status' | 'code' | 'retryable'>): string {
  switch (f.kind) {
    case 'http':
      if (f.status === 401 || f.status === 403) return `Check the destination's accountId and projectId, and that its endpoint is Optimizely's.`;
      if (f.status !== undefined && f.status < 400) return `Optimizely never redirects: check the destination's endpoint (http or https, the host).`;
      if (f.status === 429) return `Lower rateLimit.perSecond in the job's settings.`;
      if (f.retryable) return `Usually passing trouble at the endpoint; if it lasts, check its status.`;
      return `Check the destination's endpoint (or region) and account.`;
    case 'tls':
      if (f.code === 'CERT_HAS_EXPIRED' || f.code === 'CERT_NOT_YET_VALID') return `The endpoint's owner must renew its certificate (or this machine's clock is wrong).`;
      if (f.code !== undefined && (f.code.startsWith('ERR_SSL_') || f.code === 'EPROTO')) return `Check the destination's endpoint: https:// to a port that speaks plain HTTP fails like this.`;
      return `Check the destination's endpoint host. If a proxy or a private endpoint presents a certificate of your own CA, give it to Node with NODE_EXTRA_CA_CERTS=/path/to/ca.pem.`;
    case 'dns':
      if (f.retryable) return `Usually passing; if it lasts, check this machine's DNS resolver.`;
      return `Check the destination's endpoint (or region) for a typo, and DNS on this machine.`;
    case 'network':
      if (f.code === 'ECONNREFUSED') return `Check the endpoint's host and port, and that it is up.`;
      return `Usually passing; if it lasts, check the network path to the endpoint (proxy, firewall).`;
    case 'timeout':
      return `The endpoint or the path to it is slow or down; if it lasts, check it, or raise timeouts.${f.code === 'UND_ERR_BODY_TIMEOUT' ? 'bodyMs' : f.code === 'UND_ERR_HEADERS_TIMEOUT' ? 'headersMs' : 'connectMs'} in the job's settings.`;
    case 'other':
      return `Re-run with CONVEY_LOG_LEVEL=debug; if the error is not about your network or endpoint, report it as a bug.`;
  }
}
