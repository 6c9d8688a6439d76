/**
 * What paces a destination's requests: the engine takes a token before each request leaves. By
 * default it is this process's token bucket (token-bucket.ts); when the state store is PostgreSQL,
 * a budget shared by every runner sending to the destination (leased-budget.ts), so that
 * `rateLimit.perSecond` holds for the destination account, not per process.
 */
/**
 * Every implementation grants nothing while the engine's pause gate (pause-gate.ts) is in force:
 * it is the last wait before a request leaves, so a pause holds requests already waiting too.
 */
export interface RateBudget {
  /** Requests per second now (Infinity: unlimited). */
  readonly rate: number;
  /** Takes a token if one is free now and nobody waits ahead. Synchronous: the common path costs no promise. */
  tryTake(): boolean;
  /** Waits for a token, first come first served; rejects with the signal's reason on abort. */
  take(signal?: AbortSignal): Promise<void>;
  /** The adaptive rate (adaptive-rate.ts) changed it: lowered by 429s, or recovering. */
  setRate(ratePerSecond: number, reason?: 'throttled' | 'recovering'): void;
  /**
   * The endpoint told this process to wait (Retry-After; the engine's pause gate already holds
   * it): a shared budget tells every runner, whose budgets pause their own gates.
   */
  paused?(ms: number): void;
}
