// Rate accuracy: with rateLimit.perSecond at 50 and at 1,000, send 10 seconds' worth of classic
// conversions (one request each) and compare what the receiver saw with the limit: the achieved
// rate between its first and last request, and the most requests in any sliding 1-second window
// (what a rate limiter on Optimizely's side would count). Target: no window above the limit + 2%,
// and an achieved rate of at least 95% of it: the state store is PostgreSQL, so the limit is the
// destination's budget shared through it, which runs at 97% (src/delivery/leased-budget.ts).
//
//   node bench/rate-accuracy.mjs        (BENCH_RATES=50,1000 and BENCH_RUNS to change)

import { fmt, measuredRun, median, progress, round, runIfMain, withSeededProject } from './lib.mjs';

const RATES = (process.env.BENCH_RATES ?? '50,1000').split(',').map(Number);
const SECONDS = 10;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

export async function run() {
  const figures = [];
  const notes = [];
  for (const rate of RATES) {
    const rows = rate * SECONDS;
    await withSeededProject(rows, async (project) => {
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        progress(`rate ${rate}/s: run ${i + 1}/${RUNS} (${fmt(rows)} conversions)`);
        const { summary, stats } = await measuredRun(project, { protocol: 'classic', settings: { concurrency: 32, perSecond: rate }, expected: rows });
        const spanS = (stats.lastAt - stats.firstAt) / 1000;
        runs.push({
          achieved: stats.requests / spanS,
          // n requests span n − 1 intervals: the rate the pacing actually ran at.
          paced: (stats.requests - 1) / spanS,
          maxWindow: stats.maxRequestsPerSecond,
          durationMs: summary.durationMs,
        });
      }
      const achieved = median(runs.map((r) => r.achieved));
      const paced = median(runs.map((r) => r.paced));
      const worstWindow = Math.max(...runs.map((r) => r.maxWindow));
      const achievedError = achieved / rate - 1;
      const windowError = worstWindow / rate - 1;
      figures.push(
        { name: `${fmt(rate)}/s: achieved rate (requests / first→last)`, value: `${fmt(achieved, 1)}/s (${signed(achievedError)})`, target: '−5% … +2%', ok: achievedError >= -0.05 - 1e-9 && achievedError <= 0.02 + 1e-9 },
        { name: `${fmt(rate)}/s: paced rate ((requests − 1) / first→last)`, value: `${fmt(paced, 1)}/s (${signed(paced / rate - 1)})` },
        { name: `${fmt(rate)}/s: busiest 1 s window (worst of ${RUNS})`, value: `${fmt(worstWindow)} (${signed(windowError)})`, target: '≤ +2%', ok: windowError <= 0.02 + 1e-9 },
      );
      notes.push(
        `${rate}/s runs: achieved ${runs.map((r) => round(r.achieved, 1)).join(', ')}; busiest window ${runs.map((r) => r.maxWindow).join(', ')}; durationMs ${runs.map((r) => r.durationMs).join(', ')}`,
      );
    });
  }
  return {
    id: 'rate',
    title: `Rate accuracy: classic destination, ${SECONDS} s of conversions at each limit, concurrency 32 (median of ${RUNS}, busiest window worst of ${RUNS})`,
    figures,
    notes,
  };
}

const signed = (share) => `${share >= 0 ? '+' : '−'}${fmt(Math.abs(share) * 100, 2)}%`;

await runIfMain(import.meta, run);
