// Memory: peak RSS of the `convey run` process for 100,000 and for 1,000,000 conversions to the
// Event API, state in PostgreSQL, with the same job settings as events-throughput.mjs. Memory
// must not grow with the size of the run: the pipeline holds a bounded number of batches, not
// the window. Target: under 200 MB, and the larger run within 10% of the smaller.
//
// Peak RSS comes from GNU time (/usr/bin/time -v); without it, from a node wrapper that calls
// main() and prints process.resourceUsage().maxRSS.
//
//   node bench/memory.mjs        (BENCH_MEMORY_ROWS=100000,1000000 to change)

import { EVENTS_BATCH_SIZE, EVENTS_CONCURRENCY, EVENTS_PAGE_SIZE } from './events-throughput.mjs';
import {
  createProject, dbUrl, eventsDestination, fmt, haveGnuTime, jobSettings, migrateState, progress, recreateDatabase,
  resetState, runIfMain, runJob, seedConversions, startReceiver,
} from './lib.mjs';

const SIZES = (process.env.BENCH_MEMORY_ROWS ?? '100000,1000000').split(',').map(Number);
// Node's default heap sizing, then the cap the README recommends for memory-bound runners. The
// live heap of a run is 60–80 MB whatever its size; by default V8 lets the old generation grow to
// 200–300 MB between full collections, and the cap makes it collect sooner.
const HEAPS = [
  { label: 'default heap', nodeArgs: [] },
  { label: 'NODE_OPTIONS=--max-old-space-size=128', nodeArgs: ['--max-old-space-size=128'] },
];
const SOURCE_DB = 'convey_bench';
const STATE_DB = 'convey_bench_state';

export async function run() {
  await recreateDatabase(STATE_DB);
  const figures = [];
  const notes = [];
  for (const heap of HEAPS) {
    const measured = await measure(heap.nodeArgs);
    for (const m of measured) {
      figures.push({ name: `peak RSS, ${fmt(m.rows)} conversions (${heap.label})`, value: `${fmt(m.maxRssMb)} MB`, target: '< 200 MB', ok: m.maxRssMb < 200 });
    }
    if (measured.length >= 2) {
      const growth = measured.at(-1).maxRssMb / measured[0].maxRssMb - 1;
      figures.push({ name: `growth ${fmt(measured[0].rows)} → ${fmt(measured.at(-1).rows)} (${heap.label})`, value: `${growth >= 0 ? '+' : '−'}${fmt(Math.abs(growth) * 100, 1)}%`, target: '≤ +10%', ok: growth <= 0.1 });
    }
    notes.push(`${heap.label}: wall times ${measured.map((m) => `${fmt(m.wallMs / 1000, 1)} s`).join(', ')}`);
  }
  notes.push(`measured with ${haveGnuTime ? '/usr/bin/time -v' : 'process.resourceUsage().maxRSS'}`);
  return {
    id: 'memory',
    title: `Memory: peak RSS of convey run, Event API, batchSize ${fmt(EVENTS_BATCH_SIZE)}, pageSize ${fmt(EVENTS_PAGE_SIZE)}, concurrency ${EVENTS_CONCURRENCY}, PostgreSQL state`,
    figures,
    notes,
  };
}

async function measure(nodeArgs) {
  const measured = [];
  for (const rows of SIZES) {
    await recreateDatabase(SOURCE_DB);
    progress(`memory: seeding ${fmt(rows)} rows`);
    await seedConversions(dbUrl(SOURCE_DB), rows);
    const project = createProject({ sourceUrl: dbUrl(SOURCE_DB), stateUrl: dbUrl(STATE_DB) });
    try {
      await migrateState(project);
      await resetState(dbUrl(STATE_DB));
      const receiver = await startReceiver('events');
      project.writeJob(jobSettings({ destination: eventsDestination(receiver), concurrency: EVENTS_CONCURRENCY, batchSize: EVENTS_BATCH_SIZE, pageSize: EVENTS_PAGE_SIZE }));
      progress(`memory: convey run of ${fmt(rows)} conversions`);
      const { maxRssMb, wallMs } = await runJob(project, { measureRss: true, nodeArgs });
      const stats = await receiver.stop();
      if (stats.conversions !== rows) throw new Error(`receiver accepted ${stats.conversions}, expected ${rows}`);
      measured.push({ rows, maxRssMb, wallMs });
    } finally {
      project.remove();
    }
  }
  return measured;
}

await runIfMain(import.meta, run);
