import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** The old generation may grow by this share of the live heap before the next full collection. */
export const HEAP_GROWING_PERCENT = 50;

/**
 * A run's live heap is about 22 MB whatever its size (its modules, the pages read ahead and the
 * batches in flight), but by default V8 lets the old generation grow to about four times that
 * between full collections: 220–245 MB peak RSS in the Event API benchmark. At twice the live
 * heap (100%) the peak was 170–180 MB at the same speed. Once the wasm tier-up and ICU were gone
 * (keepWasmOnBaseline, time/luxon.ts), the old generation was most of what stood between a run
 * and 120 MB: at 1,000,000 conversions 100% peaked at 119–125 MB, 70% at 119–126, 60% at 120–121,
 * 50% at 115–117, for about 8% more of convey's CPU than 100% (300,000 conversions, alternating
 * runs; the SDK comparison stayed at main's ratio). Lower buys little: V8 still grows it by at least
 * 8 MB between collections (30% measured 116–118 MB at 100,000). Unlike --max-old-space-size this sets no ceiling that a large page
 * could hit. V8 reads the flag each time it sizes the heap after a collection, so setting it at
 * startup takes effect. A value given to node itself wins.
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/** The young generation (both semi-spaces) V8 may grow to, in bytes. */
export const YOUNG_GENERATION_BYTES = 16 * 2 ** 20;

/**
 * V8 grows the young generation up to 32 MB (Node 20 and 22: two semi-spaces of 16 MB), and a
 * long run always gets there: that is 32 MB of a run's peak RSS. Held at 16 MB, the peak of a
 * 300,000-conversion Event API run at the default settings is 10–15 MB lower for 3–8% more of
 * convey's CPU (more, smaller scavenges; at 8 MB it cost 20%). Node takes --max-semi-space-size
 * only at startup, so convey stops the growth instead: after each collection, once the young
 * generation has reached the cap, V8's growth factor is set to 1 (V8 reads it each time it grows
 * the space), and back to 2 should V8 have shrunk it meanwhile. Node 24's V8 grows it in smaller
 * steps, up to 128 MB by default, and the step that reaches the cap may pass it (20 MB measured).
 * A semi-space size given to node itself wins.
 */
export function capYoungGeneration(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--(max|min)[-_]semi[-_]space[-_]size\b|^--semi[-_]space[-_]growth[-_]factor\b/.test(arg))) return;
  let capped = false;
  new PerformanceObserver(() => {
    const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
    const full = young >= YOUNG_GENERATION_BYTES;
    if (full === capped) return;
    setFlagsFromString(`--semi-space-growth-factor=${full ? 1 : 2}`);
    capped = full;
  }).observe({ entryTypes: ['gc'] });
}

/**
 * undici parses HTTP responses with llhttp compiled to WebAssembly. Liftoff, V8's baseline wasm
 * compiler, compiles it on first use; then V8 recompiles the parser with TurboFan on a background
 * thread within the first requests, and that one compilation takes 35–40 MB of malloc for a
 * moment: at 1,000 conversions the whole difference between an 84 MB and a 118 MB peak RSS. The
 * parser reads a few hundred bytes per request (at most one per 50 conversions here), so its
 * baseline code costs no measurable CPU. Both flags are needed (without dynamic tiering, V8 tiers
 * every function up eagerly) and both exist from Node 20 (V8 11.3) to 24. Unlike --liftoff-only
 * (which aborts the process if Liftoff cannot compile a function), a function Liftoff cannot
 * compile still goes to TurboFan. A wasm tiering flag given to node itself wins.
 */
export function keepWasmOnBaseline(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--(no[-_])?(wasm[-_]tier[-_]up|wasm[-_]dynamic[-_]tiering|liftoff)/.test(arg))) return;
  setFlagsFromString('--no-wasm-dynamic-tiering');
  setFlagsFromString('--no-wasm-tier-up');
}
