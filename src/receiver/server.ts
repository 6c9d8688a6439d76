import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ConveyError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { systemClock, type Clock } from '../time/clock.ts';
import { FaultPlan, type FaultDecision, type FaultOptions } from './faults.ts';
import { MAX_EVENT_BATCH_BYTES, MAX_REASONS_IN_ANSWER } from './limits.ts';
import { RateWindow } from './rate-window.ts';
import { validateClassicQuery } from './validate-classic.ts';
import { validateEventBatch, type CarriedEvent, type EventApiBatch, type EventApiEvent } from './validate-events.ts';

/**
 * A strict local stand-in for Optimizely: speaks the Event API (`POST /v1/events`) or the classic
 * offline-conversion endpoint (`GET /event`), validates every request the way PROTOCOL.md says the
 * real one does (and says why it refused), de-duplicates like Optimizely, counts what it saw, and
 * can misbehave on purpose. It is what the demo, the test suite and the benchmarks send to.
 */

export { MAX_EVENT_BATCH_BYTES } from './limits.ts';
export type { FaultOptions, ScriptedFault } from './faults.ts';

export type ReceiverProtocol = 'events' | 'classic';

export interface ReceiverOptions {
  /** Which Optimizely protocol to speak. */
  protocol: ReceiverProtocol;
  /** TCP port (default 0: the OS picks a free one; read it back from `port`). */
  port?: number;
  /** Interface to bind (default 127.0.0.1: a test stand-in has no business on the network). */
  host?: string;
  /** NDJSON file, replaced at start: one line per accepted conversion (duplicates flagged). */
  record?: string;
  /** Keep accepted conversions in memory for `accepted()` (default true; benchmarks pass false). */
  keep?: boolean;
  /**
   * Answer success even when invalid, like the real Optimizely without `X-Optimizely-Strict`
   * (the request is still counted as invalid and its conversions are not accepted).
   */
  lenient?: boolean;
  /** Misbehaviour to inject; can be changed later with `setFaults`. */
  faults?: FaultOptions;
  /** Largest request body accepted (default MAX_EVENT_BATCH_BYTES); larger gets 413. */
  maxBodyBytes?: number;
  /**
   * Test hook: return a reason to treat that conversion as invalid. The whole request is then
   * refused like any other invalid one (400 naming the reason, or 204/200 when not strict), and
   * none of its conversions is accepted. `duplicate` is already known when the hook runs.
   */
  refuse?: (conversion: AcceptedConversion) => string | undefined;
  /** Where refused requests and injected faults are reported (default: nowhere). */
  logger?: Logger;
  /** Source of `receivedAt` (wall) and arrival times (monotonic); default the system clock. */
  clock?: Clock;
}

export interface AcceptedConversion {
  /** The protocol it arrived by. */
  protocol: ReceiverProtocol;
  /** Events: `visitor_id`; classic: `u`. */
  visitorId: string;
  /** Events: the event's `entity_id`. */
  entityId?: string;
  /** Events: the event's `key`; classic: `n`. */
  eventKey?: string;
  /** Events: the event's `uuid`. */
  uuid?: string;
  /** Events: `timestamp` (epoch ms); classic: `time` * 1000, or the arrival time when absent. */
  timestamp: number;
  /** Events: `revenue`; classic: `v` (integer cents). */
  revenue?: number;
  /** True when the same conversion was accepted before (Optimizely keeps only the first). */
  duplicate: boolean;
  /** Wall-clock arrival, epoch ms. */
  receivedAt: number;
  /**
   * Events: the batch envelope without `visitors`, plus `visitor` holding only this event;
   * classic: the decoded `[name, value]` query pairs in the order sent.
   */
  raw: unknown;
}

export interface ReceiverStats {
  /** Every HTTP request that arrived, faulted ones included. */
  requests: number;
  /** Requests answered 2xx that were valid. */
  acceptedRequests: number;
  /** Requests that failed validation (answered 4xx, or 2xx when not strict), wrong paths included. */
  invalidRequests: number;
  /** Conversions in accepted requests, duplicates included. */
  conversions: number;
  /** Distinct conversions. */
  unique: number;
  /** Conversions seen again: events by (entity_id, uuid, timestamp); classic by the whole query string. */
  duplicates: number;
  /** Injected faults by kind (scripted ones counted in their kind and in `scripted`). */
  faults: { status500: number; status429: number; dropped: number; stalled: number; scripted: number };
  /** Request body bytes received. */
  bytes: number;
  /** Largest number of requests that arrived in any sliding 1 s window. */
  maxRequestsPerSecond: number;
  /** Largest number of conversions accepted in any sliding 1 s window. */
  maxConversionsPerSecond: number;
  /** Monotonic ms of the first request. */
  firstAt?: number;
  /** Monotonic ms of the last request. */
  lastAt?: number;
}

export interface InvalidRequest {
  /** The first problem found. */
  reason: string;
  /** Up to MAX_REASONS_IN_ANSWER problems, as in the 400 answer. */
  reasons: string[];
  /** 0-based index of the request among those counted in `stats().requests`. */
  requestIndex: number;
  /** The status a strict client receives (400, 404, 405, 413). */
  status: number;
}

export interface Receiver {
  /** Where to send: events `http://HOST:PORT/v1/events`; classic `http://HOST:PORT/event`. */
  url: string;
  /** `http://HOST:PORT`. */
  origin: string;
  /** The port actually bound. */
  port: number;
  /** A snapshot of the counters. */
  stats(): ReceiverStats;
  /** Accepted conversions in arrival order (empty when `keep` is false). */
  accepted(): AcceptedConversion[];
  /** Refused requests in arrival order. */
  invalid(): InvalidRequest[];
  /** Replace the faults; the script and the PRNG start again. */
  setFaults(faults: FaultOptions): void;
  /** Clear counters, accepted and invalid lists; the duplicate memory too with `forgetDuplicates`. */
  reset(options?: { forgetDuplicates?: boolean }): void;
  /** Stop listening, destroy open sockets (stalled requests included), flush the record file. */
  close(): Promise<void>;
}

class Tally {
  requests = 0;
  acceptedRequests = 0;
  invalidRequests = 0;
  conversions = 0;
  unique = 0;
  duplicates = 0;
  faults = { status500: 0, status429: 0, dropped: 0, stalled: 0, scripted: 0 };
  bytes = 0;
  firstAt: number | undefined;
  lastAt: number | undefined;
  readonly requestRate = new RateWindow(1000);
  readonly conversionRate = new RateWindow(1000);
  accepted: AcceptedConversion[] = [];
  invalid: InvalidRequest[] = [];
}

type Body = { kind: 'ok'; data: Buffer } | { kind: 'too-large'; bytes: number } | { kind: 'aborted' };

const EVENTS_PATH = '/v1/events';
const CLASSIC_PATH = '/event';

export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  const protocol = options.protocol;
  if (protocol !== 'events' && protocol !== 'classic') {
    throw new ConveyError('USAGE', `receiver protocol must be 'events' or 'classic', got ${String(protocol)}`);
  }
  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new ConveyError('USAGE', `receiver port must be an integer from 0 to 65535, got ${String(requestedPort)}`);
  }
  const maxBodyBytes = options.maxBodyBytes ?? MAX_EVENT_BATCH_BYTES;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new ConveyError('USAGE', `receiver maxBodyBytes must be a positive integer, got ${String(maxBodyBytes)}`);
  }
  const keep = options.keep ?? true;
  const lenient = options.lenient ?? false;
  const logger = options.logger;
  const clock = options.clock ?? systemClock;
  const refuse = options.refuse;

  let plan = new FaultPlan(options.faults ?? {});
  let tally = new Tally();
  // Duplicate memory outlives `reset()`, as Optimizely's does: a resend after a reset is still a resend.
  let seen = new Set<string>();
  let closing = false;
  const timers = new Set<NodeJS.Timeout>();

  let record: WriteStream | undefined;
  let recordError: Error | undefined;
  if (options.record !== undefined) {
    record = await openRecord(options.record);
    record.on('error', (error) => {
      recordError ??= error;
      logger?.error('receiver cannot write its record file', { file: options.record, error: error.message });
    });
  }
  const needConversions = keep || record !== undefined || refuse !== undefined;

  const later = (ms: number, run: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!closing) run();
    }, ms);
    timers.add(timer);
  };

  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body?: string): void => {
    const write = (): void => {
      if (res.destroyed || res.writableEnded) return;
      res.writeHead(status, headers);
      res.end(body);
    };
    if (plan.delayMs > 0) later(plan.delayMs, write);
    else write();
  };

  const sendSuccess = (res: ServerResponse): void => {
    if (protocol === 'events') send(res, 204, {});
    else send(res, 200, {});
  };

  const sendProblems = (res: ServerResponse, status: number, reasons: string[], extra: Record<string, string> = {}): void => {
    const body = JSON.stringify({ error: reasons[0], reasons: reasons.slice(0, MAX_REASONS_IN_ANSWER) });
    send(res, status, { 'content-type': 'application/json', ...extra }, body);
  };

  /** Count a refused request and answer it: `status` when strict, success otherwise. */
  const refuseRequest = (
    t: Tally,
    res: ServerResponse,
    index: number,
    status: number,
    problems: string[],
    strict: boolean,
    extra: Record<string, string> = {},
  ): void => {
    const reasons = problems.slice(0, MAX_REASONS_IN_ANSWER);
    t.invalidRequests++;
    t.invalid.push({ reason: reasons[0] ?? 'invalid', reasons, requestIndex: index, status });
    logger?.warn('receiver refused a request', { request: index, status, reason: reasons[0], problems: problems.length });
    if (strict) sendProblems(res, status, reasons, extra);
    else sendSuccess(res);
  };

  /** Accept conversions unless `refuse` objects; returns the refusals (empty when accepted). */
  const acceptAll = (t: Tally, keys: string[], build: (i: number, duplicate: boolean) => AcceptedConversion, where: (i: number) => string): string[] => {
    const added: string[] = [];
    const conversions: AcceptedConversion[] = [];
    const refusals: string[] = [];
    let duplicates = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const duplicate = seen.has(key);
      if (duplicate) duplicates++;
      else {
        seen.add(key);
        if (refuse) added.push(key);
      }
      if (!needConversions) continue;
      const conversion = build(i, duplicate);
      if (refuse) {
        const reason = refuse(conversion);
        if (reason !== undefined) refusals.push(`${where(i)}refused: ${reason}`);
      }
      conversions.push(conversion);
    }
    if (refusals.length > 0) {
      for (const key of added) seen.delete(key);
      return refusals;
    }
    t.acceptedRequests++;
    t.conversions += keys.length;
    t.duplicates += duplicates;
    t.unique += keys.length - duplicates;
    t.conversionRate.add(clock.monotonic(), keys.length);
    if (keep) for (const c of conversions) t.accepted.push(c);
    if (record && recordError === undefined && conversions.length > 0) {
      // One write per request: a million conversions are ~2,000 writes, not a million.
      let lines = '';
      for (const c of conversions) lines += JSON.stringify(c) + '\n';
      record.write(lines);
    }
    return refusals;
  };

  const handleEvents = (t: Tally, req: IncomingMessage, res: ServerResponse, index: number, path: string, body: Body): void => {
    if (body.kind === 'aborted') return;
    const strict = !lenient && String(req.headers['x-optimizely-strict']).toLowerCase() === 'true';
    if (path !== EVENTS_PATH) {
      const hint = path === CLASSIC_PATH ? ' (this receiver speaks the Event API: POST /v1/events)' : '';
      return refuseRequest(t, res, index, 404, [`${req.method} ${path}: not found${hint}`], true);
    }
    if (req.method !== 'POST') {
      return refuseRequest(t, res, index, 405, [`${req.method} ${path}: method not allowed, use POST`], true, { allow: 'POST' });
    }
    if (body.kind === 'too-large') {
      return refuseRequest(
        t, res, index, 413,
        [`body: ${body.bytes} bytes is more than the ${maxBodyBytes}-byte limit per request; send fewer events per batch`],
        true,
      );
    }
    const contentType = req.headers['content-type'];
    const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
    if (mediaType !== 'application/json') {
      return refuseRequest(t, res, index, 400, [`content-type: must be application/json, got ${JSON.stringify(contentType ?? '')}`], strict);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.data.toString('utf8'));
    } catch (error) {
      return refuseRequest(t, res, index, 400, [`body: not valid JSON (${errorMessage(error)})`], strict);
    }
    const check = validateEventBatch(parsed);
    if (check.problems.length > 0) return refuseRequest(t, res, index, 400, check.problems, strict);

    const events = check.events;
    const keys = new Array<string>(events.length);
    for (let i = 0; i < events.length; i++) keys[i] = eventIdentity(events[i]!.event);
    const receivedAt = clock.now();
    let envelope: Record<string, unknown> | undefined;
    const build = (i: number, duplicate: boolean): AcceptedConversion => {
      envelope ??= omit(parsed as EventApiBatch, 'visitors');
      return eventConversion(envelope, events[i]!, receivedAt, duplicate);
    };
    const refusals = acceptAll(t, keys, build, (i) => `${events[i]!.path}: `);
    if (refusals.length > 0) return refuseRequest(t, res, index, 400, refusals, strict);
    sendSuccess(res);
  };

  const handleClassic = (t: Tally, req: IncomingMessage, res: ServerResponse, index: number, path: string, query: string, body: Body): void => {
    if (body.kind === 'aborted') return;
    const strict = !lenient;
    if (path !== CLASSIC_PATH) {
      const hint = path === EVENTS_PATH ? ' (this receiver speaks classic: GET /event?...)' : '';
      return refuseRequest(t, res, index, 404, [`${req.method} ${path}: not found${hint}`], true);
    }
    if (req.method !== 'GET') {
      return refuseRequest(t, res, index, 405, [`${req.method} ${path}: method not allowed, use GET`], true, { allow: 'GET' });
    }
    const check = validateClassicQuery(query, req.headers.host);
    const c = check.conversion;
    if (check.problems.length > 0 || c === undefined) return refuseRequest(t, res, index, 400, check.problems, strict);
    const receivedAt = clock.now();
    const build = (_i: number, duplicate: boolean): AcceptedConversion => {
      const conversion: AcceptedConversion = {
        protocol: 'classic',
        visitorId: c.userId,
        eventKey: c.eventName,
        timestamp: c.time !== undefined ? c.time * 1000 : receivedAt,
        duplicate,
        receivedAt,
        raw: check.pairs,
      };
      if (c.revenue !== undefined) conversion.revenue = c.revenue;
      return conversion;
    };
    const refusals = acceptAll(t, [query], build, () => '');
    if (refusals.length > 0) return refuseRequest(t, res, index, 400, refusals, strict);
    sendSuccess(res);
  };

  const countFault = (t: Tally, fault: FaultDecision): void => {
    if (fault.kind === 'none') return;
    if (fault.scripted) t.faults.scripted++;
    if (fault.kind === 'drop') t.faults.dropped++;
    else if (fault.kind === 'stall') t.faults.stalled++;
    else if (fault.status === 500) t.faults.status500++;
    else if (fault.status === 429) t.faults.status429++;
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Requests are counted on the tally current at arrival, so a reset mid-flight splits cleanly.
    const t = tally;
    const index = t.requests++;
    const arrived = clock.monotonic();
    t.firstAt ??= arrived;
    t.lastAt = arrived;
    t.requestRate.add(arrived);
    if (closing) {
      req.socket.destroy();
      return;
    }
    const fault = plan.next();
    countFault(t, fault);
    if (fault.kind === 'drop') {
      logger?.debug('receiver dropped a request (fault)', { request: index });
      req.socket.destroy();
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q + 1);
    const handle = (body: Body): void => {
      if (protocol === 'events') handleEvents(t, req, res, index, path, body);
      else handleClassic(t, req, res, index, path, query, body);
    };
    readBody(req, maxBodyBytes, t, (body) => {
      if (body.kind === 'aborted') return;
      if (fault.kind === 'status') {
        logger?.debug('receiver answered with an injected fault', { request: index, status: fault.status });
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
        send(res, fault.status, headers, JSON.stringify({ error: `injected fault: ${fault.status}` }));
        return;
      }
      if (fault.kind === 'stall') {
        // Processed (and possibly accepted) after the stall, like a real server that queued the
        // batch but answered too late: the client's resend must then be absorbed as a duplicate.
        logger?.debug('receiver stalls a request (fault)', { request: index, ms: fault.ms });
        later(fault.ms, () => handle(body));
        return;
      }
      handle(body);
    });
  };

  const server = createServer(
    {
      // Clients keep connections open for batches seconds apart; 65 s outlives the usual 60 s
      // idle timeouts of clients so the server is never the one that races a reused socket.
      keepAliveTimeout: 65_000,
      headersTimeout: 66_000,
      // Stalls are deliberate; Node's own request timeout would cut them short.
      requestTimeout: 0,
    },
    onRequest,
  );
  server.on('clientError', (_error, socket) => socket.destroy());

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(requestedPort, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    record?.destroy();
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConveyError('USAGE', `receiver cannot listen on ${host}:${requestedPort}: ${errorMessage(error)}`, {
      cause: error,
      hint:
        code === 'EADDRINUSE'
          ? 'Another process uses that port; pick another with --port, or --port 0 for any free one.'
          : 'Check --host names an address of this machine.',
    });
  }

  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : requestedPort;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closed: Promise<void> | undefined;

  const doClose = async (): Promise<void> => {
    closing = true;
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    if (record) {
      if (!record.destroyed) {
        record.end();
        await once(record, 'close').catch(() => undefined);
      }
      if (recordError) {
        throw new ConveyError('INTERNAL', `receiver could not write ${options.record}: ${recordError.message}`, {
          cause: recordError,
          hint: 'Check the disk has space and the file is writable.',
        });
      }
    }
  };

  return {
    url: origin + (protocol === 'events' ? EVENTS_PATH : CLASSIC_PATH),
    origin,
    port,
    stats: () => ({
      requests: tally.requests,
      acceptedRequests: tally.acceptedRequests,
      invalidRequests: tally.invalidRequests,
      conversions: tally.conversions,
      unique: tally.unique,
      duplicates: tally.duplicates,
      faults: { ...tally.faults },
      bytes: tally.bytes,
      maxRequestsPerSecond: tally.requestRate.max,
      maxConversionsPerSecond: tally.conversionRate.max,
      ...(tally.firstAt === undefined ? {} : { firstAt: tally.firstAt }),
      ...(tally.lastAt === undefined ? {} : { lastAt: tally.lastAt }),
    }),
    accepted: () => tally.accepted.slice(),
    invalid: () => tally.invalid.slice(),
    setFaults: (faults) => {
      plan = new FaultPlan(faults);
    },
    reset: (resetOptions = {}) => {
      tally = new Tally();
      if (resetOptions.forgetDuplicates) seen = new Set();
    },
    close: () => (closed ??= doClose()),
  };
}

const HEX_VALUE = new Int8Array(128);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = HEX_VALUE[65 + i] = 10 + i;
const identityScratch = Buffer.alloc(256);

/**
 * Optimizely's de-duplication key, (entity_id, uuid, timestamp), packed into a short flat string:
 * 16 uuid bytes, 6 timestamp bytes, then the entity id. A million of these in a Set take ~70 MB of
 * heap where the readable `${entity_id}|${uuid}|${timestamp}` took ~230 MB (measured with
 * --expose-gc, Node 20), and building them is faster. Only called on validated events, so the uuid
 * is 8-4-4-4-12 hex (compared case-insensitively, as RFC 9562 says) and the timestamp fits 48 bits.
 */
function eventIdentity(event: EventApiEvent): string {
  const { uuid, entity_id: entityId, timestamp } = event;
  if (entityId.length > identityScratch.length - 22) {
    // Longer than any packed key can be, so the two forms never collide.
    return `${entityId}\n${uuid.toLowerCase()}\n${timestamp}`;
  }
  let at = 0;
  for (let i = 0; i < 36; i += 2) {
    if (i === 8 || i === 13 || i === 18 || i === 23) i++;
    identityScratch[at++] = (HEX_VALUE[uuid.charCodeAt(i)]! << 4) | HEX_VALUE[uuid.charCodeAt(i + 1)]!;
  }
  identityScratch.writeUIntBE(timestamp, 16, 6);
  // Digits only (validated), so a byte per character; a JS loop beats Buffer#write's native call here.
  for (let i = 0; i < entityId.length; i++) identityScratch[22 + i] = entityId.charCodeAt(i);
  return identityScratch.toString('latin1', 0, 22 + entityId.length);
}

/**
 * Collects the body as Buffer chunks and joins them once. Past `limit` the rest is read and thrown
 * away, so the client can finish sending and read the 413 instead of a reset socket.
 */
function readBody(req: IncomingMessage, limit: number, t: Tally, done: (body: Body) => void): void {
  const declared = req.headers['content-length'];
  if (declared === '0' || (declared === undefined && req.headers['transfer-encoding'] === undefined)) {
    // A GET has no body: skip the stream machinery, it is most of a classic request's cost.
    req.resume();
    done({ kind: 'ok', data: Buffer.alloc(0) });
    return;
  }
  let chunks: Buffer[] | undefined = [];
  let size = 0;
  let settled = false;
  const settle = (body: Body): void => {
    if (settled) return;
    settled = true;
    done(body);
  };
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    t.bytes += chunk.length;
    if (chunks === undefined) return;
    if (size > limit) chunks = undefined;
    else chunks.push(chunk);
  });
  req.on('end', () => {
    settle(chunks === undefined ? { kind: 'too-large', bytes: size } : { kind: 'ok', data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
  });
  req.on('error', () => settle({ kind: 'aborted' }));
  req.on('close', () => {
    if (!req.complete) settle({ kind: 'aborted' });
  });
}

async function openRecord(file: string): Promise<WriteStream> {
  const stream = createWriteStream(file, { flags: 'w' });
  try {
    await once(stream, 'open');
  } catch (error) {
    throw new ConveyError('USAGE', `receiver cannot open its record file ${file}: ${errorMessage(error)}`, {
      cause: error,
      hint: 'Check the folder exists and is writable.',
    });
  }
  return stream;
}

/** The conversion as Optimizely would store it: the envelope, the visitor and only this event. */
function eventConversion(envelope: Record<string, unknown>, carried: CarriedEvent, receivedAt: number, duplicate: boolean): AcceptedConversion {
  const { visitor, snapshot, event } = carried;
  const conversion: AcceptedConversion = {
    protocol: 'events',
    visitorId: visitor.visitor_id,
    entityId: event.entity_id,
    timestamp: event.timestamp,
    uuid: event.uuid,
    duplicate,
    receivedAt,
    raw: { ...envelope, visitor: { ...omit(visitor, 'snapshots'), snapshots: [{ ...omit(snapshot, 'events'), events: [event] }] } },
  };
  if (event.key !== undefined) conversion.eventKey = event.key;
  if (event.revenue !== undefined) conversion.revenue = event.revenue;
  return conversion;
}

/** A shallow copy without one field (the nested arrays are shared, not copied). */
function omit(source: Record<string, unknown>, field: string): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(source)) if (key !== field) copy[key] = source[key];
  return copy;
}
