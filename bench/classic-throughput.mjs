// Classic throughput: 200,000 conversions from PostgreSQL to the classic GET endpoint (one
// request per conversion), state in PostgreSQL, no rate limit, concurrency 32, against the
// receiver running as its own process. The source table has no index on the cursor (a primary
// key only), as a warehouse table, a view or a join has none. Next to it, the machine's limit: a bare undici Pool
// sending the same number of GETs of the same shape to the same receiver at the same concurrency.
//
//   node bench/classic-throughput.mjs        (BENCH_CLASSIC_ROWS, BENCH_RUNS to change the size)

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  assertReceived, fmt, measuredRun, median, progress, round, runIfMain, startReceiver, withSeededProject,
} from './lib.mjs';

const ROWS = Number(process.env.BENCH_CLASSIC_ROWS ?? 200_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CONCURRENCY = 32;

export async function run() {
  progress(`classic: seeding ${fmt(ROWS)} rows`);
  return withSeededProject(ROWS, async (project, seeded) => {
    // Alternating, so a change in the machine's load between runs touches both alike.
    const convey = [];
    const bare = [];
    for (let i = 0; i < RUNS; i++) {
      progress(`classic: convey run ${i + 1}/${RUNS}`);
      const { wallMs, summary, cpuSeconds } = await measuredRun(project, { protocol: 'classic', settings: { concurrency: CONCURRENCY }, expected: ROWS, runOptions: { measureRss: true } });
      convey.push({ wallMs, durationMs: summary.durationMs, cpuSeconds });

      const receiver = await startReceiver('classic');
      progress(`classic: bare undici Pool ${i + 1}/${RUNS}`);
      const result = await bareClient(receiver.origin, ROWS, CONCURRENCY);
      const stats = await receiver.stop();
      assertReceived(stats, ROWS, 'bare client');
      bare.push(result);
    }

    const wall = median(convey.map((r) => r.wallMs));
    const duration = median(convey.map((r) => r.durationMs));
    const bareMs = median(bare.map((r) => r.ms));
    const conveyRate = ROWS / (wall / 1000);
    const conveyRunRate = ROWS / (duration / 1000);
    const bareRate = ROWS / (bareMs / 1000);
    const ratio = conveyRate / bareRate;
    return {
      id: 'classic',
      title: `Classic throughput: ${fmt(ROWS)} conversions, PostgreSQL source (no index on the cursor) and state, concurrency ${CONCURRENCY}, no rate limit (median of ${RUNS})`,
      figures: [
        { name: 'convey: process wall time', value: `${fmt(wall / 1000, 2)} s` },
        { name: 'convey: durationMs (summary)', value: `${fmt(duration / 1000, 2)} s` },
        { name: 'convey: conversions/s (process wall time)', value: fmt(conveyRate) },
        { name: 'convey: conversions/s (durationMs)', value: fmt(conveyRunRate) },
        { name: 'bare undici Pool: requests/s', value: fmt(bareRate) },
        { name: 'ratio convey (wall) / bare client', value: fmt(ratio, 2), target: '≥ 0.5', ok: ratio >= 0.5 },
        { name: 'ratio convey (durationMs) / bare client', value: fmt(conveyRunRate / bareRate, 2) },
        { name: 'convey: CPU µs per conversion (user + system)', value: fmt((median(convey.map((r) => r.cpuSeconds ?? NaN)) / ROWS) * 1e6, 1) },
      ],
      notes: [
        `runs (wall s): convey ${convey.map((r) => round(r.wallMs / 1000, 2)).join(', ')}; durationMs ${convey.map((r) => round(r.durationMs / 1000, 2)).join(', ')}; bare ${bare.map((r) => round(r.ms / 1000, 2)).join(', ')}`,
        `source seeded in ${fmt(seeded.seconds, 1)} s (not timed)`,
      ],
    };
  }, { cursorIndex: false });
}

async function bareClient(origin, count, concurrency) {
  const script = fileURLToPath(new URL('./bare-client.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, origin, String(count), String(concurrency)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`bare client exited ${code}`);
  return JSON.parse(out.trim());
}

await runIfMain(import.meta, run);
