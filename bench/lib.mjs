// Shared pieces of the benchmarks: a PostgreSQL admin connection, a source table filled in one
// statement, a throwaway convey project, the receiver as its own process, and the built CLI run
// as its own process with its wall time (and, on request, its peak RSS).
//
// Everything runs against dist/ (npm run build): the numbers are those of the shipped code.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';

export const repoRoot = fileURLToPath(new URL('../', import.meta.url));
/** BENCH_CONVEY_ROOT: measure another checkout's build (an A/B of a change) with the same scripts. */
const conveyRoot = process.env.BENCH_CONVEY_ROOT ?? repoRoot;
export const CLI = join(conveyRoot, 'bin', 'convey.js');
const MAIN_JS = join(conveyRoot, 'dist', 'src', 'cli', 'main.js');

/** Any database on the server, used to create and drop the benchmark databases. */
export const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The URL of database `name` on the admin server. */
export function dbUrl(name) {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Fails early, with the fix, when the CLI was not built. */
export function requireBuild() {
  if (!existsSync(MAIN_JS)) {
    throw new Error(`${MAIN_JS} does not exist: run \`npm run build\` first (the benchmarks measure the built CLI)`);
  }
}

/** Runs `fn(client)` on a fresh connection to `url`, then closes it. */
export async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drops (forcing out leftover sessions) and creates database `name`. */
export async function recreateDatabase(name) {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  await withClient(ADMIN_URL, async (c) => {
    await c.query(`drop database if exists ${name} with (force)`);
    await c.query(`create database ${name}`);
  });
}

export async function dropDatabase(name) {
  await withClient(ADMIN_URL, (c) => c.query(`drop database if exists ${name} with (force)`));
}

export async function serverVersion() {
  return withClient(ADMIN_URL, async (c) => (await c.query('show server_version')).rows[0].server_version);
}

export const FIRST_AT = '2026-03-01T00:00:00Z';
export const SPAN_DAYS = 19; // 2026-03-01 … 2026-03-20: in the past, after the jobs' start
export const EXPERIMENTS_JSON = '{"987654321":"1111111"}';
export const VISITORS = 100_000;

/**
 * Creates `table` (default `conversions`) with `n` rows in one `insert … select … from
 * generate_series`, spread evenly over 19 days of March 2026, with a primary key and, unless
 * `cursorIndex` is false, an index on (at, id). Vacuumed and analysed so the first measured read
 * does not also set hint bits.
 */
export async function seedConversions(url, n, { table = 'conversions', cursorIndex = true } = {}) {
  if (!/^[a-z_][a-z0-9_]*$/.test(table)) throw new Error(`not a plain table name: ${table}`);
  return withClient(url, async (c) => {
    const started = performance.now();
    await c.query(`drop table if exists ${table}`);
    await c.query(`
      create table ${table} (
        id text not null,
        at timestamptz not null,
        visitor text not null,
        event_key text not null,
        event_id text not null,
        revenue integer,
        experiments json not null
      )`);
    await c.query(
      `insert into ${table} (id, at, visitor, event_key, event_id, revenue, experiments)
       select 'ord-' || lpad(g::text, 8, '0'),
              $2::timestamptz + (g - 1) * ($3::float8 * interval '1 day' / $1::int),
              'visitor-' || (g % $4::int),
              case when g % 4 = 0 then 'phone_refund' else 'phone_order' end,
              case when g % 4 = 0 then '20002' else '20001' end,
              case when g % 10 = 0 then null else 1000 + g % 50000 end,
              $5::json
         from generate_series(1, $1::int) as g`,
      [n, FIRST_AT, SPAN_DAYS, VISITORS, EXPERIMENTS_JSON],
    );
    await c.query(`alter table ${table} add primary key (id)`);
    // Without it (a warehouse table, a view, a join) the window's query scans and sorts.
    if (cursorIndex) await c.query(`create index ${table}_by_at on ${table} (at, id)`);
    await c.query(`vacuum (analyze) ${table}`);
    return { rows: n, seconds: (performance.now() - started) / 1000 };
  });
}

export const JOB_SQL = `select id as conversion_id, at as occurred_at, visitor as visitor_id, event_key, event_id,
       revenue as revenue_cents, experiments
  from conversions
 where at >= :window_start and at < :window_end
`;

/**
 * Job settings with the benchmarks' defaults: no settle, no lookback, no rate limit unless given.
 * `defaults: true`: the job as a user writes it first, everything else at convey's own defaults.
 */
export function jobSettings({ destination, defaults = false, concurrency = 32, perSecond, batchSize = 500, pageSize = 5000 }) {
  if (defaults) return { source: 'warehouse', destination, start: '2026-01-01T00:00:00Z' };
  return {
    source: 'warehouse',
    destination,
    start: '2026-01-01T00:00:00Z',
    settle: 'PT0S',
    lookback: 'PT0S',
    rateLimit: perSecond === undefined ? { concurrency } : { concurrency, perSecond },
    batchSize,
    pageSize,
  };
}

export const classicDestination = (receiver) => ({ type: 'optimizely-classic', projectId: '1234567', endpoint: receiver.url });
export const eventsDestination = (receiver) => ({ type: 'optimizely-events', accountId: '1234567', projectId: '1234567', endpoint: receiver.url });

/**
 * A temporary convey project: config/default.json naming the source (a PostgreSQL URL, or any
 * `source` entry), jobs/<job>.sql and .json.
 * `stateUrl` set: CONVEY_STATE_URL; unset: the embedded store under <dir>/.convey/state.
 */
export function createProject({ sourceUrl, source, stateUrl, job = 'bench', sql = JOB_SQL, settings }) {
  const dir = mkdtempSync(join(os.tmpdir(), 'convey-bench-'));
  mkdirSync(join(dir, 'config'));
  mkdirSync(join(dir, 'jobs'));
  const warehouse = source ?? { client: 'pg', connection: sourceUrl };
  writeFileSync(join(dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse } }, null, 2));
  const project = {
    dir,
    job,
    env: { PATH: process.env.PATH, HOME: process.env.HOME ?? dir, ...(stateUrl ? { CONVEY_STATE_URL: stateUrl } : {}) },
    sql,
    writeJob(next) {
      writeFileSync(join(dir, 'jobs', `${job}.sql`), project.sql);
      writeFileSync(join(dir, 'jobs', `${job}.json`), JSON.stringify(next, null, 2));
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (settings) project.writeJob(settings);
  return project;
}

/** Empties the state tables (the schema stays migrated), so the next run sends everything again. */
export async function resetState(stateUrl) {
  await withClient(stateUrl, (c) => c.query(`truncate convey.backfill_takes, convey.rate_budgets, convey.backfill_chunks, convey.backfills, convey.rejects, convey.ledger, convey.batches, convey.watermarks, convey.runs`));
}

/**
 * Starts `convey receiver` as its own process on a free port. `stop()` sends SIGINT and resolves
 * with the stats JSON it prints on the way out.
 */
export async function startReceiver(protocol, extraArgs = [], { nodeArgs = [] } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'receiver', '--port', '0', '--protocol', protocol, ...extraArgs], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, CONVEY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`receiver did not start within 10 s; stderr: ${stderr}`)), 10_000);
    const check = () => {
      const m = /receiver listening on (http:\/\/\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', check);
    exited.then(({ code }) => reject(new Error(`receiver exited (${code}) before listening; stderr: ${stderr}`)));
  });
  return {
    origin,
    pid: child.pid,
    url: origin + (protocol === 'events' ? '/v1/events' : '/event'),
    async stop() {
      child.kill('SIGINT');
      await exited;
      const line = stdout.trim().split('\n').at(-1);
      try {
        return JSON.parse(line);
      } catch {
        throw new Error(`receiver printed no stats; stdout: ${stdout.slice(-500)} stderr: ${stderr.slice(-500)}`);
      }
    },
  };
}

const TIME_BIN = '/usr/bin/time';
export const haveGnuTime = existsSync(TIME_BIN);

/**
 * Runs the built CLI as its own process: `args` after `node bin/convey.js`. Returns the exit code,
 * output, process wall time, and with `measureRss` the peak RSS in MB and the CPU seconds (user +
 * system) of the process. `nodeArgs` go to node itself (e.g. --cpu-prof).
 */
export function runCli(args, options = {}) {
  return runNode(CLI, args, options);
}

/**
 * Measures the process it is loaded into (`node --import`) when GNU time is missing: at exit, its
 * peak RSS and CPU seconds on stderr, in GNU time's words so one parser reads both.
 */
const SELF_MEASURE = `data:text/javascript,${encodeURIComponent(
  "process.on('exit', () => { const u = process.resourceUsage();" +
    " process.stderr.write('\\n\\tUser time (seconds): ' + u.userCPUTime / 1e6 + '\\n\\tSystem time (seconds): ' + u.systemCPUTime / 1e6 +" +
    " '\\n\\tMaximum resident set size (kbytes): ' + u.maxRSS + '\\n'); });",
)}`;

/**
 * Runs `node [nodeArgs] <script> [args]` as its own process (convey, or a peer such as the SDK
 * script), with the same measures as runCli: wall time from spawn to exit, and with `measureRss`
 * peak RSS and CPU seconds (GNU time -v when present, otherwise the process reports its own).
 */
export async function runNode(script, args, { env, cwd = repoRoot, measureRss = false, nodeArgs = [] } = {}) {
  let command = process.execPath;
  let argv = [...nodeArgs, script, ...args];
  if (measureRss && haveGnuTime) {
    argv = ['-v', command, ...argv];
    command = TIME_BIN;
  } else if (measureRss) {
    argv = ['--import', SELF_MEASURE, ...argv];
  }
  const started = performance.now();
  const child = spawn(command, argv, { cwd, env: { ...env, CONVEY_LOG_LEVEL: env?.CONVEY_LOG_LEVEL ?? 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
  const wallMs = performance.now() - started;
  let maxRssMb;
  let cpuSeconds;
  let userSeconds;
  let systemSeconds;
  if (measureRss) {
    const user = /User time \(seconds\): ([\d.]+)/.exec(stderr);
    const sys = /System time \(seconds\): ([\d.]+)/.exec(stderr);
    if (user && sys) {
      userSeconds = Number(user[1]);
      systemSeconds = Number(sys[1]);
      cpuSeconds = userSeconds + systemSeconds;
    }
    const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
    if (rss) maxRssMb = Number(rss[1]) / 1024;
  }
  return {
    code,
    stdout,
    stderr,
    wallMs,
    maxRssMb,
    cpuSeconds,
    userSeconds,
    systemSeconds,
    json() {
      const line = stdout.trim().split('\n').at(-1);
      return JSON.parse(line);
    },
  };
}

/** `convey run <job> --json`; throws with the CLI's own words unless it succeeded. */
export async function runJob(project, options = {}) {
  const result = await runCli(['run', project.job, '--json', '--project', project.dir], { env: project.env, ...options });
  if (result.code !== 0) {
    throw new Error(`convey run ${project.job} exited ${result.code}\nstdout: ${result.stdout.slice(-2000)}\nstderr: ${result.stderr.slice(-2000)}`);
  }
  const summary = result.json();
  if (summary.status !== 'succeeded') throw new Error(`convey run ended ${summary.status}: ${result.stdout}`);
  return { ...result, summary };
}

export async function migrateState(project) {
  const result = await runCli(['migrate', '--project', project.dir], { env: project.env });
  if (result.code !== 0) throw new Error(`convey migrate exited ${result.code}: ${result.stderr}`);
}

/** The databases the benchmarks use: each recreates them; `npm run bench` drops them at the end. BENCH_DB_SUFFIX keeps two checkouts' runs apart. */
export const SOURCE_DB = `convey_bench${process.env.BENCH_DB_SUFFIX ?? ''}`;
export const STATE_DB = `convey_bench${process.env.BENCH_DB_SUFFIX ?? ''}_state`;

/**
 * `rows` conversions in a fresh source database, a fresh migrated state database, and a project
 * that reads the one into the other, for `use(project, seeded)`. The project folder is removed after.
 */
export async function withSeededProject(rows, use, seedOptions = {}) {
  await recreateDatabase(SOURCE_DB);
  await recreateDatabase(STATE_DB);
  const seeded = await seedConversions(dbUrl(SOURCE_DB), rows, seedOptions);
  const project = createProject({ sourceUrl: dbUrl(SOURCE_DB), stateUrl: dbUrl(STATE_DB) });
  try {
    await migrateState(project);
    return await use(project, seeded);
  } finally {
    project.remove();
  }
}

/**
 * One `convey run` of a `withSeededProject` project from empty state, against a fresh receiver
 * for `protocol` (job settings `settings` besides the destination; `runOptions` for runJob).
 * Returns runJob's result with the receiver's stats; throws unless the receiver accepted exactly
 * `expected` conversions and no invalid request.
 */
export async function measuredRun(project, { protocol, settings, expected, runOptions = {} }) {
  await resetState(dbUrl(STATE_DB));
  const receiver = await startReceiver(protocol);
  const cpu = measureCpu(receiver);
  let result;
  try {
    const destination = protocol === 'events' ? eventsDestination(receiver) : classicDestination(receiver);
    project.writeJob(jobSettings({ destination, ...settings }));
    result = await runJob(project, runOptions);
  } catch (error) {
    await cpu.stop().catch(() => undefined);
    await receiver.stop().catch(() => undefined);
    throw error;
  }
  const others = await cpu.stop();
  const stats = await receiver.stop();
  assertReceived(stats, expected, 'convey');
  return { ...result, stats, ...others };
}

/**
 * While a program runs against `receiver`: the CPU seconds the receiver and the benchmark
 * databases' PostgreSQL backends use (the other half of the two cores). `stop()` before the
 * receiver stops.
 */
export function measureCpu(receiver) {
  const backends = sampleBackends([SOURCE_DB, STATE_DB]);
  const receiverBefore = cpuSnapshot([receiver.pid]).byPid[receiver.pid] ?? 0;
  return {
    async stop() {
      const receiverCpu = (cpuSnapshot([receiver.pid]).byPid[receiver.pid] ?? 0) - receiverBefore;
      return { receiverCpu, postgresCpu: await backends.stop() };
    },
  };
}

/** The receiver saw exactly `expected` conversions, all in valid requests. */
export function assertReceived(stats, expected, who) {
  if (stats.conversions !== expected || stats.invalidRequests !== 0) {
    throw new Error(`${who}: receiver accepted ${stats.conversions} conversions (${stats.invalidRequests} invalid requests), expected ${expected}: ${JSON.stringify(stats)}`);
  }
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const round = (n, digits = 0) => Number(n.toFixed(digits));
export const fmt = (n, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** Prints a benchmark's figures as an aligned block (each script's own output). */
export function printResult(result) {
  console.log(`\n## ${result.title}`);
  for (const f of result.figures) {
    const target = f.target ? `   target ${f.target}: ${f.ok === undefined ? '-' : f.ok ? 'met' : 'MISSED'}` : '';
    console.log(`  ${f.name.padEnd(56)} ${String(f.value).padStart(14)}${target}`);
  }
  for (const note of result.notes ?? []) console.log(`  note: ${note}`);
}

/** Lets a bench script run on its own (`node bench/x.mjs`) and be imported by run-all.mjs. */
export async function runIfMain(meta, run) {
  if (process.argv[1] && meta.url === pathToFileURL(process.argv[1]).href) {
    requireBuild();
    try {
      printResult(await run());
    } catch (error) {
      console.error(error);
      process.exitCode = 1;
    }
  }
}

/** Logs progress on stderr so stdout stays the figures. */
export const progress = (message) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

/**
 * CPU seconds used so far by PostgreSQL (every live postgres process, plus the postmaster's reaped
 * children, so backends that already exited count too) and by the given pids. Linux /proc only;
 * differences of two snapshots tell where a run's CPU went.
 */
export function cpuSnapshot(pids = []) {
  const tick = 100; // USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK)
  const read = (pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      // fields after comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
      return { comm, ppid: Number(f[1]), own: (Number(f[11]) + Number(f[12])) / tick, children: (Number(f[13]) + Number(f[14])) / tick };
    } catch {
      return undefined;
    }
  };
  let postgres = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = read(entry);
    if (!p || p.comm !== 'postgres') continue;
    postgres += p.own;
    if (p.ppid === 1 || read(p.ppid)?.comm !== 'postgres') postgres += p.children; // the postmaster
  }
  const byPid = {};
  for (const pid of pids) byPid[pid] = read(pid)?.own;
  return { postgres, byPid, at: performance.now() };
}

/**
 * CPU seconds of the PostgreSQL backends connected to `databases` while a run goes on (the source
 * read, the ledger's claims and records), sampled from /proc every 100 ms: unlike cpuSnapshot it
 * leaves out what other users of a shared server do meanwhile. `stop()` returns the total. A
 * backend's last 100 ms before it exits can be missed. Linux only; 0 elsewhere.
 */
export function sampleBackends(databases) {
  const seen = new Map();
  const client = new pg.Client({ connectionString: ADMIN_URL });
  const read = (pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      return undefined;
    }
  };
  let timer;
  let stopped = false;
  const sample = async () => {
    const { rows } = await client.query('select pid from pg_stat_activity where datname = any($1)', [databases]);
    for (const { pid } of rows) {
      const cpu = read(pid);
      if (cpu !== undefined) seen.set(pid, Math.max(seen.get(pid) ?? 0, cpu));
    }
  };
  const loop = async () => {
    if (stopped) return;
    await sample().catch(() => undefined);
    if (!stopped) timer = setTimeout(loop, 100);
  };
  const ready = client.connect().then(loop, () => undefined);
  return {
    async stop() {
      await ready;
      stopped = true;
      clearTimeout(timer);
      await sample().catch(() => undefined);
      await client.end().catch(() => undefined);
      return [...seen.values()].reduce((a, b) => a + b, 0);
    },
  };
}
