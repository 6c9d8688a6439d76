// The embedded default: the classic run of classic-throughput.mjs with the state store embedded
// (PGlite under <project>/.convey/state, no CONVEY_STATE_URL) and the source still in PostgreSQL:
// throughput and peak RSS, so users know when to move the state to PostgreSQL. The store is
// created (and migrated) first by `convey migrate`, timed on its own, so the run measures the
// steady state.
//
//   node bench/embedded.mjs        (BENCH_EMBEDDED_ROWS to change)

import {
  SOURCE_DB, classicDestination, createProject, dbUrl, fmt, haveGnuTime, jobSettings, migrateState, progress, recreateDatabase,
  runIfMain, runJob, seedConversions, startReceiver,
} from './lib.mjs';

const ROWS = Number(process.env.BENCH_EMBEDDED_ROWS ?? 200_000);

export async function run() {
  await recreateDatabase(SOURCE_DB);
  progress(`embedded: seeding ${fmt(ROWS)} rows`);
  await seedConversions(dbUrl(SOURCE_DB), ROWS);
  const project = createProject({ sourceUrl: dbUrl(SOURCE_DB) });
  try {
    progress('embedded: creating the store (convey migrate)');
    const created = performance.now();
    await migrateState(project);
    const createMs = performance.now() - created;
    const receiver = await startReceiver('classic');
    project.writeJob(jobSettings({ destination: classicDestination(receiver), concurrency: 32 }));
    progress(`embedded: convey run of ${fmt(ROWS)} conversions`);
    const { wallMs, maxRssMb, cpuSeconds, summary } = await runJob(project, { measureRss: true });
    const stats = await receiver.stop();
    if (stats.conversions !== ROWS || stats.invalidRequests !== 0) throw new Error(`receiver accepted ${stats.conversions}, expected ${ROWS}`);
    return {
      id: 'embedded',
      title: `Embedded state (PGlite), classic, ${fmt(ROWS)} conversions from PostgreSQL, concurrency 32, no rate limit (1 run)`,
      figures: [
        { name: 'process wall time', value: `${fmt(wallMs / 1000, 2)} s` },
        { name: 'durationMs (summary)', value: `${fmt(summary.durationMs / 1000, 2)} s` },
        { name: 'conversions/s (process wall time)', value: fmt(ROWS / (wallMs / 1000)) },
        { name: 'peak RSS', value: `${fmt(maxRssMb)} MB` },
        { name: 'creating the store (first convey migrate)', value: `${fmt(createMs / 1000, 2)} s` },
      ],
      notes: [
        `CPU ${cpuSeconds === undefined ? 'n/a' : `${fmt(cpuSeconds, 1)} s`} for the run (the embedded PostgreSQL runs inside the convey process, so its memory and CPU are convey's); RSS by ${haveGnuTime ? '/usr/bin/time -v' : 'process.resourceUsage().maxRSS'}`,
      ],
    };
  } finally {
    project.remove();
  }
}

await runIfMain(import.meta, run);
