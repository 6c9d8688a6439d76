import type { Instant } from './instant.ts';

/**
 * A span of time on a job's cursor: what a run, a backfill chunk or a plan reads, and what the
 * state store records. Here, beside Instant, because the source, the pipeline and the state all
 * speak of it and none of them owns it.
 */
export interface Window {
  /** Inclusive. */
  start: Instant;
  /** Exclusive. */
  end: Instant;
}
