// convey against the script a team would write around Optimizely's own JavaScript SDK
// (bench/sdk-peer.mjs): 300,000 Event API conversions read from the same PostgreSQL table (a
// primary key only, no index on the cursor), sent to the same local receiver, each program timed
// as a whole process (wall time from start to exit, peak RSS, CPU seconds), alternating in one run.
// convey runs at its default job settings with its state in PostgreSQL; the SDK script with its
// batch event processor at 1,000 events per request, flushed every 100 ms.
//
// Targets: convey ≥ 0.75 × the SDK script's conversions/s, and a peak RSS no larger than its.
//
//   node bench/events-vs-sdk.mjs      (BENCH_SDK_ROWS=300000, BENCH_RUNS=3)

import { fileURLToPath } from 'node:url';
import {
  assertReceived, dbUrl, fmt, measureCpu, measuredRun, median, progress, round, runIfMain, runNode, SOURCE_DB, startReceiver, withSeededProject,
} from './lib.mjs';

const ROWS = Number(process.env.BENCH_SDK_ROWS ?? 300_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PEER = fileURLToPath(new URL('./sdk-peer.mjs', import.meta.url));

export async function run() {
  progress(`events vs SDK: seeding ${fmt(ROWS)} rows`);
  return withSeededProject(ROWS, async (project, seeded) => {
    const convey = [];
    const sdk = [];
    for (let i = 0; i < RUNS; i++) {
      progress(`events vs SDK: convey run ${i + 1}/${RUNS} (default job settings)`);
      const c = await measuredRun(project, { protocol: 'events', settings: { defaults: true }, expected: ROWS, runOptions: { measureRss: true } });
      convey.push({ wallMs: c.wallMs, maxRssMb: c.maxRssMb, cpuSeconds: c.cpuSeconds, receiverCpu: c.receiverCpu, postgresCpu: c.postgresCpu, requests: c.stats.acceptedRequests });

      progress(`events vs SDK: SDK script ${i + 1}/${RUNS}`);
      sdk.push(await sdkRun());
    }

    const rate = (runs) => ROWS / (median(runs.map((r) => r.wallMs)) / 1000);
    const peak = (runs) => Math.max(...runs.map((r) => r.maxRssMb ?? 0));
    const cpuPer = (runs) => (median(runs.map((r) => r.cpuSeconds ?? NaN)) / ROWS) * 1e6;
    const ratio = rate(convey) / rate(sdk);
    const rssRatio = peak(convey) / peak(sdk);
    const line = (runs) =>
      runs.map((r) => `${round(r.wallMs / 1000, 2)} s, ${round(r.maxRssMb ?? 0)} MB, CPU s: own ${round(r.cpuSeconds ?? 0, 2)}, PostgreSQL ${round(r.postgresCpu, 2)}, receiver ${round(r.receiverCpu, 2)}`).join('; ');
    return {
      id: 'sdk',
      title: `convey vs a script on the official SDK (@optimizely/optimizely-sdk 6.6.1): ${fmt(ROWS)} Event API conversions, PostgreSQL source (no index on the cursor), convey at its default job settings with PostgreSQL state (median of ${RUNS}, alternating)`,
      figures: [
        { name: 'convey: conversions/s (process wall time)', value: fmt(rate(convey)) },
        { name: 'SDK script: conversions/s (process wall time)', value: fmt(rate(sdk)) },
        { name: 'ratio convey / SDK script', value: fmt(ratio, 2), target: '≥ 0.75', ok: ratio >= 0.75 },
        { name: 'convey: peak RSS', value: `${fmt(peak(convey))} MB` },
        { name: 'SDK script: peak RSS', value: `${fmt(peak(sdk))} MB` },
        { name: 'peak RSS convey / SDK script', value: fmt(rssRatio, 2), target: '≤ 1', ok: rssRatio <= 1 },
        { name: 'convey: CPU µs per conversion (user + system)', value: fmt(cpuPer(convey), 1) },
        { name: 'SDK script: CPU µs per conversion (user + system)', value: fmt(cpuPer(sdk), 1) },
      ],
      notes: [
        `convey runs: ${line(convey)}; ${convey[0].requests} requests each`,
        `SDK script runs: ${line(sdk)}; ${sdk[0].requests} requests each`,
        `source seeded in ${fmt(seeded.seconds, 1)} s (not timed)`,
      ],
    };
  }, { cursorIndex: false });
}

/** One run of the SDK script against a fresh receiver: every conversion must arrive, in valid requests. */
async function sdkRun() {
  const receiver = await startReceiver('events');
  const cpu = measureCpu(receiver);
  let result;
  try {
    result = await runNode(PEER, [dbUrl(SOURCE_DB), 'conversions', receiver.url], { env: { PATH: process.env.PATH }, measureRss: true });
  } catch (error) {
    await cpu.stop().catch(() => undefined);
    await receiver.stop().catch(() => undefined);
    throw error;
  }
  const { receiverCpu, postgresCpu } = await cpu.stop();
  const stats = await receiver.stop();
  if (result.code !== 0) throw new Error(`SDK script exited ${result.code}: ${result.stderr.slice(-2000)}`);
  const own = result.json();
  if (own.tracked !== ROWS || own.failed) throw new Error(`SDK script tracked ${own.tracked}, ${own.failed} failed; expected ${ROWS}: ${result.stdout}`);
  assertReceived(stats, ROWS, 'SDK script');
  return { wallMs: result.wallMs, maxRssMb: result.maxRssMb, cpuSeconds: result.cpuSeconds, receiverCpu, postgresCpu, requests: stats.acceptedRequests };
}

await runIfMain(import.meta, run);
