import type { JobConfig } from '../config/project.ts';
import type { Window } from '../time/window.ts';
import { addMicros, fromMicros, maxInstant, type Instant } from '../time/instant.ts';

/**
 * The window an incremental run reads: [watermark − lookback, now − settle), or from the job's
 * `start` on the first run. The lookback re-reads rows that landed late (the ledger stops them
 * being sent twice); the settle leaves the newest rows, whose transactions may still be
 * committing, to the next run. Never before `start`.
 */
export function incrementalWindow(job: JobConfig, watermark: Instant | undefined, nowMs: number): Window {
  const end = fromMicros(BigInt(Math.floor(nowMs)) * 1000n - job.settleMicros);
  const start = watermark ? maxInstant(job.start, addMicros(watermark, -job.lookbackMicros)) : job.start;
  return { start, end };
}

export const isEmptyWindow = (window: Window): boolean => window.end <= window.start;
