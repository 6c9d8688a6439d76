// Runners sharing the work through the PostgreSQL state store (README "Scheduling").
//
// 1. One backfill (38 chunks of 12 hours) started on 1, 2 and 4 runners at once. Each runner is
//    held back by a receiver that answers slowly (BENCH_RUNNERS_DELAY_MS, 200 ms) at concurrency
//    2: one runner alone sends at most 2 requests per 200 ms, whatever the machine. So the figure
//    measures how well the runners divide the chunks, not the 2 cores they share. Target: 4
//    runners at least 3 times as fast as one.
// 2. 4 runners, each running its own job to one destination, sharing its budget of L requests/s
//    (classic, one request per conversion, a receiver that answers at once): the rate the receiver saw between its first and
//    last request, and its busiest sliding second. Target: ≥ 0.95 L, and no second above 1.02 L.
//
//   node bench/runners.mjs      (BENCH_RUNNERS_ROWS=20000, BENCH_RUNNERS_RATE=500, BENCH_RUNNERS_SECONDS=10)

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dbUrl, eventsDestination, classicDestination, fmt, jobSettings, progress, resetState, runCli, runIfMain, startReceiver, withSeededProject, JOB_SQL, STATE_DB, assertReceived } from './lib.mjs';

const ROWS = Number(process.env.BENCH_RUNNERS_ROWS ?? 20_000);
const DELAY_MS = Number(process.env.BENCH_RUNNERS_DELAY_MS ?? 200);
const RATE = Number(process.env.BENCH_RUNNERS_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_RUNNERS_SECONDS ?? 10);
const COUNTS = [1, 2, 4];
const BACKFILL = ['backfill', 'bench', '--from', '2026-03-01', '--to', '2026-03-20', '--chunk', 'PT12H', '--json'];

/** `n` copies of `args` started together, each with its own host name; resolves with their results. */
async function together(project, n, args) {
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => runCli([...args, '--project', project.dir], { env: { ...project.env, CONVEY_HOSTNAME: `bench-runner-${i + 1}` } })),
  );
  for (const r of results) {
    if (r.code !== 0) throw new Error(`a runner exited ${r.code}: ${r.stderr.slice(-2000)}`);
  }
  return results.map((r) => r.json());
}

export async function run() {
  const figures = [];
  const notes = [];
  await withSeededProject(ROWS, async (project) => {
    // 1. Speed-up with the number of runners.
    const seconds = {};
    for (const n of COUNTS) {
      await resetState(dbUrl(STATE_DB));
      const receiver = await startReceiver('events', ['--delay-ms', String(DELAY_MS)]);
      let summaries;
      const started = performance.now();
      try {
        project.writeJob(jobSettings({ destination: eventsDestination(receiver), concurrency: 2, batchSize: 50, pageSize: 1000 }));
        progress(`backfill of ${fmt(ROWS)} conversions on ${n} runner(s)`);
        summaries = await together(project, n, BACKFILL);
      } finally {
        seconds[n] = (performance.now() - started) / 1000;
        const stats = await receiver.stop();
        assertReceived(stats, ROWS, `${n} runner(s)`);
      }
      const chunks = summaries.map((s) => s.details.chunksDoneHere);
      figures.push({ name: `backfill on ${n} runner(s): wall time`, value: `${fmt(seconds[n], 1)} s (${fmt(ROWS / seconds[n])}/s)` });
      notes.push(`${n} runner(s): chunks per runner ${chunks.join(', ')}`);
    }
    const speedup = seconds[1] / seconds[4];
    figures.push({ name: '4 runners against 1 (wall time ratio)', value: `${fmt(speedup, 2)}×`, target: '≥ 3×', ok: speedup >= 3 });

    // 2. One destination budget shared by 4 runners: each runs its own job (a quarter of the rows)
    // to the same destination, so demand stays up from the first request to the last.
    const rows = Math.min(ROWS, RATE * SECONDS);
    await resetState(dbUrl(STATE_DB));
    const receiver = await startReceiver('classic');
    let stats;
    try {
      const settings = jobSettings({ destination: classicDestination(receiver), concurrency: 16, perSecond: RATE, batchSize: 100, pageSize: 1000 });
      for (let i = 0; i < 4; i++) {
        const sql = JOB_SQL.replace('where at >=', `where substr(id, 5)::int <= ${rows} and substr(id, 5)::int % 4 = ${i} and at >=`);
        writeFileSync(join(project.dir, 'jobs', `share-${i}.sql`), sql);
        writeFileSync(join(project.dir, 'jobs', `share-${i}.json`), JSON.stringify(settings));
      }
      progress(`${fmt(rows)} classic conversions on 4 runners sharing ${fmt(RATE)}/s`);
      const results = await Promise.all([0, 1, 2, 3].map((i) => runCli(['run', `share-${i}`, '--json', '--project', project.dir], { env: { ...project.env, CONVEY_HOSTNAME: `bench-runner-${i + 1}` } })));
      for (const r of results) if (r.code !== 0) throw new Error(`a runner exited ${r.code}: ${r.stderr.slice(-2000)}`);
    } finally {
      stats = await receiver.stop();
    }
    assertReceived(stats, rows, '4 runners sharing a budget');
    const achieved = (stats.requests - 1) / ((stats.lastAt - stats.firstAt) / 1000);
    figures.push(
      { name: `4 runners, budget ${fmt(RATE)}/s: achieved rate`, value: `${fmt(achieved, 1)}/s (${fmt((achieved / RATE) * 100, 1)}%)`, target: '≥ 95%', ok: achieved >= RATE * 0.95 },
      { name: `4 runners, budget ${fmt(RATE)}/s: busiest 1 s window`, value: `${fmt(stats.maxRequestsPerSecond)} (${fmt((stats.maxRequestsPerSecond / RATE) * 100, 1)}%)`, target: '≤ 102%', ok: stats.maxRequestsPerSecond <= RATE * 1.02 },
    );
    notes.push(`budget run: ${fmt(stats.requests)} requests to the receiver`);
  });
  return {
    id: 'runners',
    title: `Runners sharing work: a backfill of ${fmt(ROWS)} Event API conversions on 1, 2 and 4 runners (receiver answering in ${DELAY_MS} ms, concurrency 2 each); 4 runners sharing a budget of ${fmt(RATE)}/s`,
    figures,
    notes,
  };
}

await runIfMain(import.meta, run);
