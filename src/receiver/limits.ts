/**
 * Limits the receiver enforces, taken from Optimizely's own documentation (see PROTOCOL.md) so a
 * job that passes locally does not meet a surprise in production.
 */

/** The Event API refuses a request body larger than 3.5 MB (Event API bundling page). */
export const MAX_EVENT_BATCH_BYTES = 3_500_000;

/** How many reasons a 400 answer lists: enough to fix a mapping, short enough to read in a log. */
export const MAX_REASONS_IN_ANSWER = 20;

/**
 * Validation stops collecting after this many problems. A 500-event batch with one wrong column
 * would otherwise produce 500 near-identical reasons and cost as much as accepting it.
 */
export const MAX_PROBLEMS_COLLECTED = 100;
