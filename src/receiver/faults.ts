import { ConveyError } from '../errors.ts';

/**
 * How the receiver misbehaves, so convey's retry, timeout and resend paths can be exercised
 * against a real socket. Random faults come from a seeded PRNG: the same seed and the same
 * request order give the same faults, so a failing run can be replayed.
 */
export interface FaultOptions {
  /** Share of requests answered 500 (0..1). */
  failRate?: number;
  /** Share of requests answered 429 with `Retry-After` (0..1). */
  throttleRate?: number;
  /** Value of `Retry-After`, in seconds, on random 429s (default 1). */
  retryAfterSeconds?: number;
  /** Share of requests whose socket is destroyed without an answer (0..1). */
  dropRate?: number;
  /** Share of requests answered only after `stallMs` (0..1). */
  stallRate?: number;
  /** How long a stalled request waits before it is processed and answered (default 30000). */
  stallMs?: number;
  /** Fixed latency added to every answer, in ms (default 0). */
  delayMs?: number;
  /** PRNG seed (default 1). */
  seed?: number;
  /** Answer the first N requests with these outcomes in order, then behave normally (for exact tests). */
  script?: ScriptedFault[];
}

export interface ScriptedFault {
  /** The status to answer, `drop` to destroy the socket, `stall` to answer only after `stallMs`. */
  status: 500 | 429 | 503 | 'drop' | 'stall';
  /** `Retry-After` value sent as is (seconds or an HTTP date); 429 defaults to `retryAfterSeconds`. */
  retryAfter?: string;
}

/** What happens to one request before the receiver looks at it. */
export type FaultDecision =
  | { kind: 'none' }
  | { kind: 'drop'; scripted: boolean }
  | { kind: 'stall'; ms: number; scripted: boolean }
  | { kind: 'status'; status: 500 | 429 | 503; retryAfter: string | undefined; scripted: boolean };

export const DEFAULT_STALL_MS = 30_000;
export const DEFAULT_RETRY_AFTER_SECONDS = 1;

/** mulberry32: 32 bits of state, good enough spread for fault shares, and trivially seedable. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Check fault options once, with messages that name the option and the rule. */
export function checkFaultOptions(faults: FaultOptions): void {
  const rate = (name: keyof FaultOptions, value: number | undefined): number => {
    if (value === undefined) return 0;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
      throw new ConveyError('USAGE', `faults.${name} must be a share between 0 and 1, got ${String(value)}`, {
        hint: 'Use 0.3 for 30% of requests.',
      });
    }
    return value;
  };
  const total =
    rate('failRate', faults.failRate) +
    rate('throttleRate', faults.throttleRate) +
    rate('dropRate', faults.dropRate) +
    rate('stallRate', faults.stallRate);
  if (total > 1 + 1e-9) {
    throw new ConveyError('USAGE', `fault rates add up to ${total}, more than 1`, {
      hint: 'failRate + throttleRate + dropRate + stallRate is the share of requests that fail; keep it at most 1.',
    });
  }
  const nonNegative = (name: keyof FaultOptions, value: number | undefined): void => {
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new ConveyError('USAGE', `faults.${name} must be a non-negative number, got ${String(value)}`);
    }
  };
  nonNegative('retryAfterSeconds', faults.retryAfterSeconds);
  nonNegative('stallMs', faults.stallMs);
  nonNegative('delayMs', faults.delayMs);
  if (faults.seed !== undefined && !Number.isInteger(faults.seed)) {
    throw new ConveyError('USAGE', `faults.seed must be an integer, got ${String(faults.seed)}`);
  }
  for (const [i, step] of (faults.script ?? []).entries()) {
    if (![500, 429, 503, 'drop', 'stall'].includes(step.status)) {
      throw new ConveyError('USAGE', `faults.script[${i}].status must be 500, 429, 503, 'drop' or 'stall', got ${String(step.status)}`);
    }
  }
}

/**
 * Decides, request by request in arrival order, which fault (if any) applies. One PRNG draw per
 * unscripted request, split into bands (drop, stall, 429, 500), so each rate is the exact share of
 * requests it names and a seed replays the same sequence.
 */
export class FaultPlan {
  readonly delayMs: number;
  private readonly options: FaultOptions;
  private readonly random: () => number;
  private scriptAt = 0;
  private readonly active: boolean;

  constructor(faults: FaultOptions = {}) {
    checkFaultOptions(faults);
    this.options = { ...faults, script: [...(faults.script ?? [])] };
    this.delayMs = faults.delayMs ?? 0;
    this.random = mulberry32(faults.seed ?? 1);
    this.active =
      (faults.failRate ?? 0) + (faults.throttleRate ?? 0) + (faults.dropRate ?? 0) + (faults.stallRate ?? 0) > 0;
  }

  next(): FaultDecision {
    const o = this.options;
    const stallMs = o.stallMs ?? DEFAULT_STALL_MS;
    const retryAfter = String(o.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS);
    const step = o.script?.[this.scriptAt];
    if (step) {
      this.scriptAt++;
      if (step.status === 'drop') return { kind: 'drop', scripted: true };
      if (step.status === 'stall') return { kind: 'stall', ms: stallMs, scripted: true };
      return {
        kind: 'status',
        status: step.status,
        retryAfter: step.retryAfter ?? (step.status === 429 ? retryAfter : undefined),
        scripted: true,
      };
    }
    if (!this.active) return { kind: 'none' };
    const r = this.random();
    let band = o.dropRate ?? 0;
    if (r < band) return { kind: 'drop', scripted: false };
    band += o.stallRate ?? 0;
    if (r < band) return { kind: 'stall', ms: stallMs, scripted: false };
    band += o.throttleRate ?? 0;
    if (r < band) return { kind: 'status', status: 429, retryAfter, scripted: false };
    band += o.failRate ?? 0;
    if (r < band) return { kind: 'status', status: 500, retryAfter: undefined, scripted: false };
    return { kind: 'none' };
  }
}
