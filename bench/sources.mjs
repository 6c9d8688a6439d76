// Sources: 1,000,000 Event API conversions read from
//   - a PostgreSQL table with an index on (at, id), and the same rows in a table with only its
//     primary key (a warehouse table, a view or a join has no index on the cursor): within 1.2×;
//   - the table without the index at 250,000 and at 1,000,000 rows: the time per conversion within
//     15% (reading is linear: one query per window, where keyset pages re-ran the SELECT and
//     scanned the window again for each page);
//   - a Parquet file queried in place by DuckDB, and a MariaDB table, each with its peak RSS.
// Every run: state in PostgreSQL, the receiver as its own process, the Event API settings of
// events-throughput.mjs, convey's process wall time and peak RSS.
//
//   node bench/sources.mjs      (BENCH_SOURCES_ROWS=1000000, BENCH_SOURCES_SMALL=250000,
//                                BENCH_RUNS=1, BENCH_MYSQL_URL=mysql://root@127.0.0.1:3306/test)

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { EVENTS_BATCH_SIZE, EVENTS_CONCURRENCY, EVENTS_PAGE_SIZE } from './events-throughput.mjs';
import {
  createProject, dbUrl, EXPERIMENTS_JSON, FIRST_AT, fmt, measuredRun, median, migrateState, progress, recreateDatabase, round, runIfMain,
  seedConversions, SOURCE_DB, SPAN_DAYS, STATE_DB, VISITORS,
} from './lib.mjs';

const ROWS = Number(process.env.BENCH_SOURCES_ROWS ?? 1_000_000);
const SMALL = Number(process.env.BENCH_SOURCES_SMALL ?? 250_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 1);
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const SETTINGS = { concurrency: EVENTS_CONCURRENCY, batchSize: EVENTS_BATCH_SIZE, pageSize: EVENTS_PAGE_SIZE };

const sqlFor = (table, quote = (c) => c) => `select id as conversion_id, ${quote('at')} as occurred_at, visitor as visitor_id, event_key, event_id,
       revenue as revenue_cents, experiments
  from ${table}
 where ${quote('at')} >= :window_start and ${quote('at')} < :window_end
`;

export async function run() {
  await recreateDatabase(SOURCE_DB);
  await recreateDatabase(STATE_DB);
  progress(`sources: seeding PostgreSQL with ${fmt(ROWS)} rows twice (with and without the cursor index) and ${fmt(SMALL)}`);
  await seedConversions(dbUrl(SOURCE_DB), ROWS, { table: 'indexed' });
  await seedConversions(dbUrl(SOURCE_DB), ROWS, { table: 'unindexed', cursorIndex: false });
  await seedConversions(dbUrl(SOURCE_DB), SMALL, { table: 'unindexed_small', cursorIndex: false });

  const project = createProject({ sourceUrl: dbUrl(SOURCE_DB), stateUrl: dbUrl(STATE_DB) });
  const measure = async (label, rows, sql, source) => {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      progress(`sources: ${label} ${i + 1}/${RUNS}`);
      const target = source ? createProject({ source, stateUrl: dbUrl(STATE_DB), sql }) : project;
      if (!source) project.sql = sql;
      try {
        const { wallMs, maxRssMb, summary } = await measuredRun(target, { protocol: 'events', settings: SETTINGS, expected: rows, runOptions: { measureRss: true } });
        if (summary.read !== rows) throw new Error(`${label}: read ${summary.read}, expected ${rows}`);
        runs.push({ wallMs, maxRssMb });
      } finally {
        if (target !== project) target.remove();
      }
    }
    return { label, rows, wallMs: median(runs.map((r) => r.wallMs)), maxRssMb: Math.max(...runs.map((r) => r.maxRssMb ?? 0)), runs };
  };
  try {
    await migrateState(project);
    const indexed = await measure('PostgreSQL, index on (at, id)', ROWS, sqlFor('indexed'));
    const unindexed = await measure('PostgreSQL, primary key only', ROWS, sqlFor('unindexed'));
    const small = await measure('PostgreSQL, primary key only', SMALL, sqlFor('unindexed_small'));
    const parquet = await parquetFile();
    const duckdb = await measure('DuckDB, a Parquet file', ROWS, sqlFor(`read_parquet('${parquet.path}')`, (c) => `"${c}"`), { client: 'duckdb' }).finally(parquet.remove);
    const mariadb = await measure('MariaDB, primary key only', ROWS, sqlFor('conversions'), await mariadbSource());

    const ratio = unindexed.wallMs / indexed.wallMs;
    const perSmall = small.wallMs / small.rows;
    const perLarge = unindexed.wallMs / unindexed.rows;
    const linear = Math.abs(perLarge / perSmall - 1);
    const line = (m) => ({ name: `${m.label}: ${fmt(m.rows)} conversions`, value: `${fmt(m.wallMs / 1000, 2)} s, ${fmt(m.rows / (m.wallMs / 1000))}/s, ${fmt(m.maxRssMb)} MB` });
    return {
      id: 'sources',
      title: `Sources: ${fmt(ROWS)} Event API conversions per engine, batchSize ${fmt(EVENTS_BATCH_SIZE)}, pageSize ${fmt(EVENTS_PAGE_SIZE)}, concurrency ${EVENTS_CONCURRENCY}, state in PostgreSQL (median of ${RUNS})`,
      figures: [
        line(indexed),
        line(unindexed),
        { name: 'without the index / with it', value: fmt(ratio, 2), target: '≤ 1.2', ok: ratio <= 1.2 },
        line(small),
        { name: `µs per conversion, ${fmt(SMALL)} / ${fmt(ROWS)} (no index)`, value: `${fmt(perSmall * 1000, 1)} / ${fmt(perLarge * 1000, 1)}`, target: 'within 15%', ok: linear <= 0.15 },
        line(duckdb),
        line(mariadb),
      ],
      notes: [indexed, unindexed, small, duckdb, mariadb].map((m) => `${m.label}, ${fmt(m.rows)}: wall s ${m.runs.map((r) => round(r.wallMs / 1000, 2)).join(', ')}`),
    };
  } finally {
    project.remove();
    await dropMariadb();
  }
}

async function dropMariadb() {
  const mysql = (await import('mysql2/promise')).default;
  const admin = await mysql.createConnection({ uri: MYSQL_URL });
  await admin.query('drop database if exists convey_bench').finally(() => admin.end());
}

/** The same rows as seedConversions, written by DuckDB to a Parquet file in a folder of their own. */
async function parquetFile() {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const dir = mkdtempSync(join(os.tmpdir(), 'convey-bench-parquet-'));
  const path = join(dir, 'conversions.parquet');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  progress(`sources: writing ${fmt(ROWS)} rows to Parquet`);
  await connection.run(`copy (
      select 'ord-' || lpad(g::varchar, 8, '0') as id,
             $2::timestamptz + to_microseconds(cast((g - 1) * ($3 * 86400000000.0 / $1) as bigint)) as "at",
             'visitor-' || (g % $4) as visitor,
             case when g % 4 = 0 then 'phone_refund' else 'phone_order' end as event_key,
             case when g % 4 = 0 then '20002' else '20001' end as event_id,
             case when g % 10 = 0 then null else 1000 + g % 50000 end as revenue,
             $5::json as experiments
        from range(1, $1 + 1) as t(g)
    ) to '${path}' (format parquet)`, [ROWS, FIRST_AT, SPAN_DAYS, VISITORS, EXPERIMENTS_JSON]);
  connection.closeSync();
  instance.closeSync();
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The same rows in a MariaDB table with only its primary key. */
async function mariadbSource() {
  const mysql = (await import('mysql2/promise')).default;
  const admin = await mysql.createConnection({ uri: MYSQL_URL });
  progress(`sources: seeding MariaDB with ${fmt(ROWS)} rows`);
  try {
    await admin.query('drop database if exists convey_bench');
    await admin.query('create database convey_bench');
    await admin.query('use convey_bench');
    await admin.query("set time_zone = '+00:00'");
    await admin.query(`create table conversions (
      id varchar(16) primary key, at timestamp(6) null default null, visitor varchar(32) not null, event_key varchar(32) not null,
      event_id varchar(16) not null, revenue int, experiments json not null)`);
    // MariaDB's sequence engine: seq_1_to_N is a table of 1…N.
    await admin.query(
      `insert into conversions
       select concat('ord-', lpad(seq, 8, '0')),
              timestamp(?) + interval ((seq - 1) * ? * 86400000000 div ?) microsecond,
              concat('visitor-', seq % ?),
              if(seq % 4 = 0, 'phone_refund', 'phone_order'),
              if(seq % 4 = 0, '20002', '20001'),
              if(seq % 10 = 0, null, 1000 + seq % 50000),
              ?
         from seq_1_to_${Math.trunc(ROWS)}`,
      [FIRST_AT.replace('T', ' ').replace('Z', ''), SPAN_DAYS, ROWS, VISITORS, EXPERIMENTS_JSON],
    );
  } finally {
    await admin.end();
  }
  const url = new URL(MYSQL_URL);
  url.pathname = '/convey_bench';
  return { client: 'mysql', connection: url.toString() };
}

await runIfMain(import.meta, run);
