// Nothing to do: `convey run` when no new rows exist. One run catches up, then N more runs find
// nothing; the figure is the median wall time of the whole process (start, config, state store,
// lock, source query, summary, exit): what a cron job that fires every few minutes costs.
// Target: under 1.5 s with PostgreSQL state. The embedded store is reported for information.
//
//   node bench/nothing-to-do.mjs        (BENCH_IDLE_RUNS to change N)

import {
  SOURCE_DB, STATE_DB, classicDestination, createProject, dbUrl, fmt, jobSettings, median, progress, recreateDatabase,
  round, runIfMain, runJob, seedConversions, startReceiver,
} from './lib.mjs';

const ROWS = 10_000;
const RUNS = Number(process.env.BENCH_IDLE_RUNS ?? 7);

export async function run() {
  await recreateDatabase(SOURCE_DB);
  await recreateDatabase(STATE_DB);
  await seedConversions(dbUrl(SOURCE_DB), ROWS);
  const receiver = await startReceiver('classic');
  const figures = [];
  const notes = [];
  try {
    for (const state of ['postgres', 'embedded']) {
      const project = createProject({
        sourceUrl: dbUrl(SOURCE_DB),
        ...(state === 'postgres' ? { stateUrl: dbUrl(STATE_DB) } : {}),
        settings: jobSettings({ destination: classicDestination(receiver) }),
      });
      try {
        progress(`nothing to do (${state} state): catch-up run of ${fmt(ROWS)} conversions`);
        const first = await runJob(project);
        if (first.summary.sent !== ROWS) throw new Error(`catch-up run sent ${first.summary.sent}, expected ${ROWS}`);
        progress(`nothing to do (${state} state): ${RUNS} idle runs`);
        const walls = [];
        const durations = [];
        for (let i = 0; i < RUNS; i++) {
          const { wallMs, summary } = await runJob(project);
          if (summary.read !== 0 || summary.sent !== 0) throw new Error(`an idle run read ${summary.read} and sent ${summary.sent}`);
          walls.push(wallMs);
          durations.push(summary.durationMs);
        }
        const wall = median(walls);
        figures.push(
          state === 'postgres'
            ? { name: 'PostgreSQL state: median process wall time', value: `${fmt(wall / 1000, 2)} s`, target: '< 1.5 s', ok: wall < 1500 }
            : { name: 'embedded state: median process wall time', value: `${fmt(wall / 1000, 2)} s` },
          { name: `${state === 'postgres' ? 'PostgreSQL' : 'embedded'} state: median durationMs (inside runJob)`, value: `${fmt(median(durations))} ms` },
        );
        notes.push(`${state}: wall ms ${walls.map((w) => round(w)).join(', ')}; first (catch-up) run ${fmt(first.wallMs / 1000, 2)} s`);
      } finally {
        project.remove();
      }
    }
  } finally {
    await receiver.stop();
  }
  return { id: 'idle', title: `Nothing to do: convey run with no new rows (median of ${RUNS} runs after a catch-up run)`, figures, notes };
}

await runIfMain(import.meta, run);
