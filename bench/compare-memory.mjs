// plan --compare: peak RSS and wall time of `convey plan <job> --compare <ref>` over a window of
// 100,000 and of 1,000,000 rows, the SQL changed (two reads of the source) so that 1 conversion in
// 10 has another revenue and 1 in 100 another conversion_id. Both sides are sorted on disk, not
// held in memory: the target is memory that does not grow with the window (the 1M compare within
// 10% of the 100k one), the same bound as `convey run` (bench/memory.mjs).
//
//   node bench/compare-memory.mjs        (BENCH_COMPARE_ROWS=100000,1000000 to change)

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createProject, dbUrl, dropDatabase, fmt, haveGnuTime, JOB_SQL, jobSettings, migrateState, progress, recreateDatabase, runCli, runIfMain, seedConversions } from './lib.mjs';

// Databases of its own: the other benchmarks (and other checkouts' runs of them) use convey_bench.
const SOURCE = `convey_bench_compare${process.env.BENCH_DB_SUFFIX ?? ''}`;
const STATE = `convey_bench_compare${process.env.BENCH_DB_SUFFIX ?? ''}_state`;

async function withProject(rows, use) {
  await recreateDatabase(SOURCE);
  await recreateDatabase(STATE);
  await seedConversions(dbUrl(SOURCE), rows);
  const project = createProject({ sourceUrl: dbUrl(SOURCE), stateUrl: dbUrl(STATE) });
  try {
    await migrateState(project);
    return await use(project);
  } finally {
    project.remove();
    await dropDatabase(SOURCE);
    await dropDatabase(STATE);
  }
}

const SIZES = (process.env.BENCH_COMPARE_ROWS ?? '100000,1000000').split(',').map(Number);
const RANGE = ['--from', '2026-03-01', '--to', '2026-03-21'];

const HEAD_SQL = JOB_SQL.replace('select id as conversion_id', "select case when right(id::text, 2) = '07' then id::text || '-x' else id::text end as conversion_id")
  .replace('revenue as revenue_cents', "case when right(id::text, 1) = '3' then revenue * 2 else revenue end as revenue_cents");

export async function run() {
  const measured = [];
  for (const rows of SIZES) {
    progress(`compare: seeding ${fmt(rows)} rows`);
    await withProject(rows, async (project) => {
      project.writeJob(jobSettings({ destination: { type: 'optimizely-events', accountId: '1234567', endpoint: 'http://127.0.0.1:9/v1/events' } }));
      const git = (...args) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@example.com', ...args], { cwd: project.dir, stdio: 'ignore' });
      git('init', '-q');
      git('add', 'jobs');
      git('commit', '-q', '-m', 'base');
      writeFileSync(join(project.dir, 'jobs', `${project.job}.sql`), HEAD_SQL);
      progress(`compare: convey plan --compare over ${fmt(rows)} rows`);
      const result = await runCli(['plan', project.job, '--compare', 'HEAD', ...RANGE, '--json', '--fail-on', 'none', '--project', project.dir], { env: project.env, measureRss: true });
      if (result.code !== 0) throw new Error(`convey plan --compare exited ${result.code}: ${result.stderr.slice(-2000)}`);
      const report = result.json();
      const changed = report.classes.changed.count;
      const added = report.classes.added.count;
      if (report.change.read !== rows || changed + added === 0) throw new Error(`unexpected compare: read ${report.change.read}, changed ${changed}, added ${added}`);
      measured.push({ rows, maxRssMb: result.maxRssMb, wallMs: result.wallMs, changed, added, removed: report.classes.removed.count });
    });
  }
  const figures = measured.map((m) => ({ name: `peak RSS, compare of ${fmt(m.rows)} rows (two reads)`, value: `${fmt(m.maxRssMb)} MB, ${fmt(m.wallMs / 1000, 1)} s` }));
  if (measured.length >= 2) {
    const growth = measured.at(-1).maxRssMb / measured[0].maxRssMb - 1;
    figures.push({ name: `growth ${fmt(measured[0].rows)} → ${fmt(measured.at(-1).rows)}`, value: `${growth >= 0 ? '+' : '−'}${fmt(Math.abs(growth) * 100, 1)}%`, target: '≤ +10%', ok: growth <= 0.1 });
  }
  return {
    id: 'compare',
    title: 'plan --compare: peak RSS over the window, SQL changed (1 in 10 revenues, 1 in 100 ids), PostgreSQL source and state',
    figures,
    notes: [
      ...measured.map((m) => `${fmt(m.rows)} rows: ${fmt(m.changed)} changed, ${fmt(m.added)} added, ${fmt(m.removed)} removed`),
      `measured with ${haveGnuTime ? '/usr/bin/time -v' : 'process.resourceUsage().maxRSS'}`,
    ],
  };
}

await runIfMain(import.meta, run);
