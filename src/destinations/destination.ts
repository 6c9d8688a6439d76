import type { Conversion, Rejection } from '../check/conversion.ts';
import type { OutboundRequest } from '../delivery/request.ts';

/** One conversion as it goes on the wire; `payload` is what the ledger stores for resends. */
export interface Encoded {
  event: string;
  conversionId: string;
  payload: string;
}

/** A request and the conversions it carries. */
export interface PlannedRequest {
  request: OutboundRequest;
  items: Encoded[];
}

/**
 * A protocol: what it needs from a row, how one conversion is written, and how conversions are
 * grouped into requests. It knows nothing of the ledger or of sending.
 */
export interface Destination {
  readonly type: 'optimizely-events' | 'optimizely-classic';
  /** Ledger identity: a conversion is sent once per (key, event, conversion_id). */
  readonly key: string;
  /** For people: "Optimizely Event API, account 123, https://…". */
  readonly label: string;
  /** A 400 on a request carrying many conversions can be narrowed by splitting it. */
  readonly splittable: boolean;
  /** Problems with the columns the job's SQL returns, found before anything is read or sent. */
  checkColumns(columns: ReadonlySet<string>): string[];
  /** Why this protocol cannot carry a checked row, if it cannot. */
  refuse(conversion: Conversion): Rejection | undefined;
  /** The event part of the idempotency key. */
  event(conversion: Conversion): string;
  encode(conversion: Conversion): Encoded;
  /** Groups conversions (in order) into requests. */
  requests(items: readonly Encoded[]): PlannedRequest[];
}
