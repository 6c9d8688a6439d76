// Profiles one convey run (and the receiver) with node --cpu-prof and says where the time went:
// CPU seconds of convey, the receiver and PostgreSQL over the run, the wall time of each SQL
// statement (bench/pg-timing.mjs), then convey's profile by package and by function. Not part of
// `npm run bench`: a tool for deciding what to optimise.
//
//   node bench/profile.mjs events [rows=1000000] [batchSize=2000] [concurrency=4]
//   node bench/profile.mjs classic [rows=200000]
//   node bench/profile.mjs defaults [rows=300000]   (Event API at convey's default job settings, as
//                                                    events-vs-sdk.mjs runs it: no cursor index)
//
// Profiles land in /tmp/prof/<scenario>-<time>/ (convey-*.cpuprofile and receiver/*.cpuprofile).

import { mkdirSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { printSummary } from './profile-summary.mjs';
import {
  SOURCE_DB, STATE_DB, classicDestination, cpuSnapshot, createProject, dbUrl, eventsDestination, fmt, jobSettings, migrateState, progress,
  recreateDatabase, requireBuild, resetState, runJob, seedConversions, startReceiver,
} from './lib.mjs';

requireBuild();
const [scenario = 'events', rowsArg, batchArg, concurrencyArg] = process.argv.slice(2);
const defaults = scenario === 'defaults';
const events = scenario === 'events' || defaults;
const rows = Number(rowsArg ?? (defaults ? 300_000 : events ? 1_000_000 : 200_000));
const batchSize = Number(batchArg ?? (events ? 2000 : 500));
const concurrency = Number(concurrencyArg ?? (events ? 4 : 32));
const pageSize = events ? 20_000 : 5000;
const dir = join('/tmp/prof', `${scenario}-${Date.now()}`);
mkdirSync(join(dir, 'receiver'), { recursive: true });

await recreateDatabase(SOURCE_DB);
await recreateDatabase(STATE_DB);
progress(`profile ${scenario}: seeding ${fmt(rows)} rows`);
await seedConversions(dbUrl(SOURCE_DB), rows, { cursorIndex: !defaults });
const project = createProject({ sourceUrl: dbUrl(SOURCE_DB), stateUrl: dbUrl(STATE_DB) });
await migrateState(project);
await resetState(dbUrl(STATE_DB));
const receiver = await startReceiver(events ? 'events' : 'classic', [], { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', join(dir, 'receiver')] });
project.writeJob(jobSettings({ destination: events ? eventsDestination(receiver) : classicDestination(receiver), defaults, concurrency, batchSize, pageSize }));
progress(`profile ${scenario}: run (${defaults ? 'default job settings' : `batchSize ${batchSize}, concurrency ${concurrency}, pageSize ${pageSize}`})`);
const before = cpuSnapshot([receiver.pid]);
const pgTiming = fileURLToPath(new URL('./pg-timing.mjs', import.meta.url));
const result = await runJob(project, { measureRss: true, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir, '--import', pgTiming] });
const after = cpuSnapshot([receiver.pid]);
const stats = await receiver.stop();
project.remove();

const wall = result.wallMs / 1000;
const receiverCpu = after.byPid[receiver.pid] - before.byPid[receiver.pid];
const pgCpu = after.postgres - before.postgres;
console.log(`\n${scenario}: ${fmt(rows)} conversions, wall ${wall.toFixed(2)} s, durationMs ${result.summary.durationMs}, ${stats.requests} requests, peak RSS ${fmt(result.maxRssMb)} MB`);
console.log('CPU seconds during the run (2 cores = at most ' + (2 * wall).toFixed(1) + ' s):');
console.log(`  convey process   ${result.cpuSeconds.toFixed(2)} s  (${((result.cpuSeconds / wall) * 100).toFixed(0)}% of one core)`);
console.log(`  receiver process ${receiverCpu.toFixed(2)} s  (${((receiverCpu / wall) * 100).toFixed(0)}% of one core)`);
console.log(`  PostgreSQL       ${pgCpu.toFixed(2)} s  (${((pgCpu / wall) * 100).toFixed(0)}% of one core)`);
console.log(`  idle             ${(2 * wall - result.cpuSeconds - receiverCpu - pgCpu).toFixed(2)} s`);
const statements = /pg-timing (.*)/.exec(result.stderr);
if (statements) {
  console.log('\nSQL statements, wall ms from call to answer (includes waiting for convey\'s own event loop; summed over connections):');
  for (const q of JSON.parse(statements[1]).slice(0, 10)) console.log(`  ${String(q.ms).padStart(7)} ms ${String(q.count).padStart(6)} ×  ${q.sql}`);
}
const profile = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
printSummary(join(dir, profile), 40);
const receiverProfile = readdirSync(join(dir, 'receiver')).find((f) => f.endsWith('.cpuprofile'));
if (receiverProfile) printSummary(join(dir, 'receiver', receiverProfile), 15);
console.log(`\nprofiles in ${dir}`);
