// Event API throughput: 1,000,000 conversions from PostgreSQL to the Event API (POST /v1/events,
// many conversions per request), state in PostgreSQL, no rate limit, against the receiver running
// as its own process. Target: the million in under 20 s.
//
//   node bench/events-throughput.mjs
//   BENCH_EVENTS_ROWS, BENCH_RUNS, BENCH_BATCH_SIZE, BENCH_PAGE_SIZE, BENCH_CONCURRENCY override the defaults.

import { fmt, measuredRun, median, progress, round, runIfMain, withSeededProject } from './lib.mjs';

const ROWS = Number(process.env.BENCH_EVENTS_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
// Chosen by back-to-back sweeps of 1M conversions on the 2-core machine (bench/README.md):
// batchSize 2,000 / 5,000 / 10,000 at concurrency 4 took 35–38 s, 37 s and 39 s, holding 280,
// 380 and 460 MB at peak; concurrency 2 or 8 and pageSize 50,000 were slower. 2,000 events are
// ~370 KB per request, far under the 3.5 MB body limit. Once the keyset condition used the index
// (0ad72b5), pages of 4,000 rows beat 20,000: 19.3 s and 235 MB against 20.9 s and 275 MB.
export const EVENTS_BATCH_SIZE = Number(process.env.BENCH_BATCH_SIZE ?? 2_000);
export const EVENTS_PAGE_SIZE = Number(process.env.BENCH_PAGE_SIZE ?? 4_000);
export const EVENTS_CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);

export async function run() {
  progress(`events: seeding ${fmt(ROWS)} rows`);
  return withSeededProject(ROWS, async (project, seeded) => {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      progress(`events: convey run ${i + 1}/${RUNS} (batchSize ${EVENTS_BATCH_SIZE}, pageSize ${EVENTS_PAGE_SIZE}, concurrency ${EVENTS_CONCURRENCY})`);
      const { wallMs, summary, stats } = await measuredRun(project, {
        protocol: 'events',
        settings: { concurrency: EVENTS_CONCURRENCY, batchSize: EVENTS_BATCH_SIZE, pageSize: EVENTS_PAGE_SIZE },
        expected: ROWS,
      });
      runs.push({ wallMs, durationMs: summary.durationMs, stats });
    }
    const wall = median(runs.map((r) => r.wallMs));
    const duration = median(runs.map((r) => r.durationMs));
    const last = runs.at(-1);
    const bytesPerRequest = last.stats.bytes / last.stats.acceptedRequests;
    return {
      id: 'events',
      title: `Event API throughput: ${fmt(ROWS)} conversions, batchSize ${fmt(EVENTS_BATCH_SIZE)}, pageSize ${fmt(EVENTS_PAGE_SIZE)}, concurrency ${EVENTS_CONCURRENCY} (median of ${RUNS})`,
      figures: [
        { name: 'process wall time', value: `${fmt(wall / 1000, 2)} s`, target: '< 20 s', ok: wall < 20_000 },
        { name: 'durationMs (summary)', value: `${fmt(duration / 1000, 2)} s` },
        { name: 'conversions/s (process wall time)', value: fmt(ROWS / (wall / 1000)) },
        { name: 'conversions/s (durationMs)', value: fmt(ROWS / (duration / 1000)) },
        { name: 'requests sent', value: fmt(last.stats.requests) },
        { name: 'bytes per request', value: fmt(bytesPerRequest) },
        { name: 'bytes per conversion', value: fmt(last.stats.bytes / ROWS) },
      ],
      notes: [
        `runs (wall s): ${runs.map((r) => round(r.wallMs / 1000, 2)).join(', ')}; durationMs ${runs.map((r) => round(r.durationMs / 1000, 2)).join(', ')}`,
        `source seeded in ${fmt(seeded.seconds, 1)} s (not timed)`,
      ],
    };
  });
}

await runIfMain(import.meta, run);
