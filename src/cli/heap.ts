import { setFlagsFromString } from 'node:v8';

/** The old generation may grow by this share of the live heap before the next full collection. */
export const HEAP_GROWING_PERCENT = 100;

/**
 * A run's live heap is about 30 MB whatever its size (one page and a few batches in flight), but
 * by default V8 lets the old generation grow to about four times that between full collections:
 * 220–245 MB peak RSS in the Event API benchmark. At twice the live heap the peak is 170–180 MB
 * at the same speed (50% saved another 8 MB for 7% more CPU; bench/memory.mjs), and unlike
 * --max-old-space-size this sets no ceiling that a large page could hit. V8 reads the flag each
 * time it sizes the heap after a collection, so setting it at startup takes effect. A value given
 * to node itself wins.
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
