// Memory: peak RSS of the `convey run` process for 100,000 and for 1,000,000 conversions to the
// Event API, state in PostgreSQL, at convey's default job settings (as a user runs it first).
// Memory must not grow with the size of the run: the pipeline holds a bounded number of batches,
// not the window. Targets: 1,000,000 under 120 MB, and the larger run within 10% of the smaller.
//
// Peak RSS comes from GNU time (/usr/bin/time -v); without it, from a node wrapper that calls
// main() and prints process.resourceUsage().maxRSS.
//
//   node bench/memory.mjs        (BENCH_MEMORY_ROWS=100000,1000000 to change)

import { fmt, haveGnuTime, measuredRun, progress, runIfMain, withSeededProject } from './lib.mjs';

const SIZES = (process.env.BENCH_MEMORY_ROWS ?? '100000,1000000').split(',').map(Number);
// convey sizes V8's heap itself (src/cli/heap.ts); the second row is V8's own default, for
// comparison: the live heap of a run is 25–40 MB whatever its size, by default V8 lets the old
// generation grow to about four times that between full collections, and the young generation
// to 32 MB. Only convey's own setting is held to the targets.
const HEAPS = [
  { label: 'convey', nodeArgs: [], judged: true },
  { label: "V8's default heap sizing", nodeArgs: ['--heap-growing-percent=0', '--semi-space-growth-factor=2'], judged: false },
];

export async function run() {
  const figures = [];
  const notes = [];
  for (const heap of HEAPS) {
    const measured = await measure(heap.nodeArgs);
    for (const m of measured) {
      const judged = heap.judged && m.rows >= 1_000_000;
      figures.push({ name: `peak RSS, ${fmt(m.rows)} conversions (${heap.label})`, value: `${fmt(m.maxRssMb)} MB`, ...(judged && { target: '< 120 MB', ok: m.maxRssMb < 120 }) });
    }
    if (measured.length >= 2) {
      const growth = measured.at(-1).maxRssMb / measured[0].maxRssMb - 1;
      figures.push({ name: `growth ${fmt(measured[0].rows)} → ${fmt(measured.at(-1).rows)} (${heap.label})`, value: `${growth >= 0 ? '+' : '−'}${fmt(Math.abs(growth) * 100, 1)}%`, ...(heap.judged && { target: '≤ +10%', ok: growth <= 0.1 }) });
    }
    notes.push(`${heap.label}: wall times ${measured.map((m) => `${fmt(m.wallMs / 1000, 1)} s`).join(', ')}`);
  }
  notes.push(`measured with ${haveGnuTime ? '/usr/bin/time -v' : 'process.resourceUsage().maxRSS'}`);
  return {
    id: 'memory',
    title: 'Memory: peak RSS of convey run, Event API, default job settings, PostgreSQL state',
    figures,
    notes,
  };
}

async function measure(nodeArgs) {
  const measured = [];
  for (const rows of SIZES) {
    progress(`memory: seeding ${fmt(rows)} rows`);
    await withSeededProject(rows, async (project) => {
      progress(`memory: convey run of ${fmt(rows)} conversions`);
      const { maxRssMb, wallMs } = await measuredRun(project, {
        protocol: 'events',
        settings: { defaults: true },
        expected: rows,
        runOptions: { measureRss: true, nodeArgs },
      });
      measured.push({ rows, maxRssMb, wallMs });
    });
  }
  return measured;
}

await runIfMain(import.meta, run);
