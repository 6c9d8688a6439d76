// `npm run bench`: every benchmark in turn against the built CLI, then one Markdown table with
// the machine it ran on, written to bench/results/latest.md and printed.
//
//   node bench/run-all.mjs [name…]     (names: sdk classic events memory rate idle embedded sources compare runners verdict; default all)

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { SOURCE_DB, STATE_DB, dropDatabase, fmt, printResult, progress, repoRoot, requireBuild, serverVersion } from './lib.mjs';

const BENCHES = {
  sdk: () => import('./events-vs-sdk.mjs'),
  classic: () => import('./classic-throughput.mjs'),
  events: () => import('./events-throughput.mjs'),
  memory: () => import('./memory.mjs'),
  rate: () => import('./rate-accuracy.mjs'),
  idle: () => import('./nothing-to-do.mjs'),
  embedded: () => import('./embedded.mjs'),
  sources: () => import('./sources.mjs'),
  compare: () => import('./compare-memory.mjs'),
  runners: () => import('./runners.mjs'),
  verdict: () => import('./verdict-history.mjs'),
};

requireBuild();
const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!(name in BENCHES)) throw new Error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(', ')}`);
}
const started = performance.now();
const results = [];
const failures = [];
for (const [name, load] of Object.entries(BENCHES)) {
  if (wanted.length && !wanted.includes(name)) continue;
  const benchStarted = performance.now();
  try {
    const result = await (await load()).run();
    result.seconds = (performance.now() - benchStarted) / 1000;
    printResult(result);
    results.push(result);
  } catch (error) {
    console.error(`\n${name} failed:`, error);
    failures.push({ name, message: String(error?.message ?? error).split('\n')[0] });
  }
}
await dropDatabase(SOURCE_DB);
await dropDatabase(STATE_DB);
const totalSeconds = (performance.now() - started) / 1000;

const commit = (() => {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'migrations'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    return dirty ? `${sha} + uncommitted changes in src/ or migrations/` : sha;
  } catch {
    return 'unknown';
  }
})();

const lines = [
  '# convey benchmarks',
  '',
  `- Date: ${new Date().toISOString()}`,
  `- Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${os.platform()} ${os.release()}`,
  `- Node ${process.version}, PostgreSQL ${await serverVersion()}`,
  `- convey commit ${commit}`,
  `- Total time: ${fmt(totalSeconds)} s`,
  '',
  '| benchmark | figure | value | target | met |',
  '|---|---|---|---|---|',
];
for (const result of results) {
  for (const f of result.figures) {
    lines.push(`| ${result.id} | ${f.name} | ${f.value} | ${f.target ?? ''} | ${f.ok === undefined ? '' : f.ok ? 'yes' : '**no**'} |`);
  }
}
for (const failure of failures) lines.push(`| ${failure.name} | FAILED: ${failure.message.replaceAll('|', '\\|')} | | | **no** |`);
lines.push('', '## Setups and raw runs', '');
for (const result of results) {
  lines.push(`- **${result.id}** (${fmt(result.seconds)} s): ${result.title}`);
  for (const note of result.notes ?? []) lines.push(`  - ${note}`);
}
const markdown = lines.join('\n') + '\n';
const dir = join(repoRoot, 'bench', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'latest.md'), markdown);
progress(`wrote bench/results/latest.md (${fmt(totalSeconds)} s in all)`);
console.log('\n' + markdown);
if (failures.length) process.exitCode = 1;
