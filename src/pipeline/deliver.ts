import type { Destination, Encoded } from '../destinations/destination.ts';
import type { Failure } from '../delivery/failure.ts';
import type { SendResult } from '../delivery/request.ts';
import type { Transport } from './transport.ts';

/** What became of one conversion handed to `deliver`. */
export type ItemOutcome =
  | { kind: 'sent' }
  | { kind: 'failed'; error: string; attempts: number; failure: Failure }
  | { kind: 'deferred' }
  | { kind: 'refused'; reason: string };

/** Shared: on the classic endpoint this is one outcome per request. */
const SENT: ItemOutcome = Object.freeze({ kind: 'sent' });

/**
 * Sends conversions as the destination groups them and reports an outcome per conversion. A
 * request refused as a whole (400) that carries several conversions is split in halves and each
 * half sent again, until the conversions the endpoint objects to are isolated: one bad conversion
 * among 500 costs about 2·log2(500) ≈ 18 extra requests, and the other 499 arrive.
 */
export async function deliver(
  destination: Destination,
  transport: Transport,
  items: readonly Encoded[],
): Promise<Map<Encoded, ItemOutcome>> {
  const outcomes = new Map<Encoded, ItemOutcome>();
  await deliverPart(destination, transport, items, outcomes);
  return outcomes;
}

/** Not async: on the classic endpoint this runs once per conversion, and the frame cost shows. */
function sendPlanned(
  destination: Destination,
  transport: Transport,
  request: Parameters<Transport['send']>[0],
  items: readonly Encoded[],
  outcomes: Map<Encoded, ItemOutcome>,
): Promise<void> {
  return transport.send(request).then((result) => settle(destination, transport, result, items, outcomes));
}

function settle(
  destination: Destination,
  transport: Transport,
  result: SendResult,
  items: readonly Encoded[],
  outcomes: Map<Encoded, ItemOutcome>,
): Promise<void> | undefined {
  switch (result.kind) {
    case 'delivered':
      for (const item of items) outcomes.set(item, SENT);
      return;
    case 'failed': {
      const failed: ItemOutcome = { kind: 'failed', error: result.error, attempts: result.attempts, failure: result.failure };
      for (const item of items) outcomes.set(item, failed);
      return;
    }
    case 'cancelled':
      for (const item of items) outcomes.set(item, { kind: 'deferred' });
      return;
    case 'refused': {
      if (items.length > 1 && destination.splittable) {
        const half = Math.ceil(items.length / 2);
        return Promise.all([items.slice(0, half), items.slice(half)].map((part) => deliverPart(destination, transport, part, outcomes))).then(() => undefined);
      }
      const reason = `the endpoint refused it: HTTP ${result.status}${result.body ? ` ${truncate(result.body.trim())}` : ''}`;
      for (const item of items) outcomes.set(item, { kind: 'refused', reason });
      return;
    }
  }
}

async function deliverPart(destination: Destination, transport: Transport, items: readonly Encoded[], outcomes: Map<Encoded, ItemOutcome>): Promise<void> {
  await Promise.all(destination.requests(items).map((planned) => sendPlanned(destination, transport, planned.request, planned.items, outcomes)));
}

function truncate(text: string, max = 500): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
