// The verdict's cost: after each run convey reads the job's successful runs of the last 8 weeks
// (at most 5,000) and compares the run with them. The figure is the median time of that step
// (src/verdict/judge.ts: the history query, the seasonal matching, the checks, storing the
// warnings) on PostgreSQL, for an hourly job's 8 weeks (1,344 runs) and for the cap (a job run
// every 16 minutes). Target: under 0.2 s at the cap, next to an idle run's 1.5 s.
//
//   node bench/verdict-history.mjs

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { STATE_DB, dbUrl, fmt, median, progress, recreateDatabase, repoRoot, runIfMain } from './lib.mjs';

const dist = (path) => import(pathToFileURL(join(repoRoot, 'dist', 'src', path)).href);
const TIMES = 9;

export async function run() {
  const [{ createPoolDb }, { migrateLatest }, { judgeRun }] = await Promise.all([dist('state/db.js'), dist('state/migrate.js'), dist('verdict/judge.js')]);
  await recreateDatabase(STATE_DB);
  const url = dbUrl(STATE_DB);
  await migrateLatest({ connectionString: url });
  const db = createPoolDb({ connectionString: url });
  const figures = [];
  const notes = [];
  try {
    for (const [runs, everySeconds, label] of [[1_344, 3_600, "an hourly job's 8 weeks"], [5_000, 960, 'the cap: a run every 16 minutes for 8 weeks']]) {
      progress(`verdict: ${fmt(runs)} runs of history`);
      await db.query('truncate convey.runs cascade');
      await db.query(
        `insert into convey.runs (job, mode, status, started_at, finished_at, window_start, window_end, watermark_before, watermark_after, counts, convey_version, host, pid, warnings)
         select 'bench', 'run', 'succeeded', now() - make_interval(secs => g * $2), now() - make_interval(secs => g * $2 - 5),
                now() - make_interval(secs => (g + 1) * $2), now() - make_interval(secs => g * $2),
                now() - make_interval(secs => (g + 1) * $2), now() - make_interval(secs => g * $2),
                jsonb_build_object('read', 1000 + g % 50, 'rejected', g % 3), 'bench', 'bench', 0, '[]'
           from generate_series($1::int - 1, 0, -1) g`,
        [runs, everySeconds],
      );
      const { rows } = await db.query(`insert into convey.runs (job, mode, status, convey_version, host, pid) values ('bench', 'run', 'running', 'bench', 'bench', 0) returning id::int as id`);
      const now = Date.now();
      const alerts = {
        enabled: true, historyMs: 56 * 86_400_000, minRuns: 5, newRejectReason: { enabled: true }, watermarkLag: { enabled: true, times: 2 },
        rowsRead: { enabled: true, below: 0.2, above: 3, minRows: 100 }, rejectedShare: { enabled: true, above: 0.01, times: 3, minRejects: 10 },
      };
      const times = [];
      for (let i = 0; i < TIMES; i++) {
        const started = performance.now();
        const verdict = await judgeRun(db, {
          job: 'bench', runId: rows[0].id, mode: 'run', status: 'succeeded', timezone: 'Europe/Berlin',
          window: { startMs: now - everySeconds * 1000, endMs: now }, read: 1000, rejected: 0,
          startedAtMs: now, endedAtMs: now + 5000, watermarkBeforeMs: now - everySeconds * 1000, watermarkAfterMs: now,
        }, alerts);
        times.push(performance.now() - started);
        if (verdict.baseline?.runs !== runs) throw new Error(`compared with ${verdict.baseline?.runs} runs, expected ${runs}`);
      }
      const ms = median(times);
      figures.push({ name: `${fmt(runs)} runs (${label})`, value: `${fmt(ms)} ms`, ...(runs === 5_000 ? { target: '< 200 ms', ok: ms < 200 } : {}) });
      notes.push(`${fmt(runs)} runs: ${times.map((t) => fmt(t)).join(', ')} ms`);
    }
  } finally {
    await db.close();
  }
  return { id: 'verdict', title: `The verdict on one run against its history (median of ${TIMES})`, figures, notes };
}

await runIfMain(import.meta, run);
