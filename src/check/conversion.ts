import type { Instant } from '../time/instant.ts';

/** The columns a job's SQL may return. Anything else is a mistake and is reported, never dropped. */
export const CANONICAL_COLUMNS = [
  'conversion_id',
  'occurred_at',
  'visitor_id',
  'event_key',
  'event_id',
  'revenue_cents',
  'value',
  'quantity',
  'experiments',
  'experiment_id',
  'variation_id',
  'campaign_id',
  'segments',
  'attributes',
  'tags',
] as const;

export const REQUIRED_COLUMNS = ['conversion_id', 'occurred_at', 'visitor_id'] as const;

export interface Experiment {
  experimentId: string;
  /** One id, or several for a multivariate experiment (joined with `_` on the classic wire). */
  variationIds: string[];
}

export interface Attribute {
  type: string;
  entityId: string;
  key: string;
  value: string | number | boolean;
}

/** One checked row: every field has the type and form the protocols need. */
export interface Conversion {
  conversionId: string;
  occurredAt: Instant;
  /** The value of the job's cursor column (occurred_at unless the job names another). */
  cursor: Instant;
  visitorId: string;
  eventKey?: string;
  eventId?: string;
  revenueCents?: number;
  value?: number;
  quantity?: number;
  /** In the order the SQL returned them (classic sends one x parameter each, in this order). */
  experiments: Experiment[];
  campaignId?: string;
  segments: Array<[string, string]>;
  attributes: Attribute[];
  tags?: Record<string, string | number | boolean>;
}

/** Why a row cannot be sent. `code` is stable (for --reason filters and grouping). */
export interface Rejection {
  code: string;
  reason: string;
}
