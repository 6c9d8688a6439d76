import type { Conversion } from './conversion.ts';

/**
 * A checked conversion written back in the job's own vocabulary (the canonical columns, typed as
 * the README's table has them), for people: `convey test` expectations and `plan --compare`
 * field differences. Empty optional columns are left out, as a NULL means "none".
 */
export type CanonicalConversion = Record<string, string | number | Record<string, unknown> | unknown[]>;

export function canonicalConversion(c: Conversion): CanonicalConversion {
  const out: CanonicalConversion = { conversion_id: c.conversionId, occurred_at: c.occurredAt, visitor_id: c.visitorId };
  if (c.eventKey !== undefined) out.event_key = c.eventKey;
  if (c.eventId !== undefined) out.event_id = c.eventId;
  if (c.revenueCents !== undefined) out.revenue_cents = c.revenueCents;
  if (c.value !== undefined) out.value = c.value;
  if (c.quantity !== undefined) out.quantity = c.quantity;
  if (c.experiments.length) out.experiments = Object.fromEntries(c.experiments.map((e) => [e.experimentId, e.variationIds.join('_')]));
  if (c.campaignId !== undefined) out.campaign_id = c.campaignId;
  if (c.segments.length) out.segments = Object.fromEntries(c.segments);
  if (c.attributes.length) out.attributes = c.attributes.map((a) => ({ entity_id: a.entityId, key: a.key, value: a.value, ...(a.type === 'custom' ? {} : { type: a.type }) }));
  if (c.tags !== undefined) out.tags = c.tags;
  return out;
}

/** The canonical columns a conversion is compared on (its key, conversion_id, aside), in the README's order. */
export const COMPARED_FIELDS = ['occurred_at', 'visitor_id', 'event_key', 'event_id', 'revenue_cents', 'value', 'quantity', 'experiments', 'campaign_id', 'segments', 'attributes', 'tags'] as const;

/** Each compared field as text (JSON for lists and objects), null when empty. */
export function fieldTexts(c: CanonicalConversion): Array<string | null> {
  return COMPARED_FIELDS.map((f) => {
    const v = c[f];
    return v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v);
  });
}
