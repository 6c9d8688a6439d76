import './helpers/foreign-zone.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import avaTest, { type ExecutionContext } from 'ava';
import type { Receiver } from '../src/receiver/server.ts';
import { classicJob, eventsJob, withReceiver, type SummaryJson } from './helpers/fixtures.ts';
import { createTestProject, waitFor, type TestProject } from './helpers/project.ts';
import { startRelay } from './helpers/relay.ts';
import { contractEngines, type EngineDatabase, type EngineFixture } from './helpers/source-engines.ts';

/**
 * The contract every source engine passes (src/source/<engine>/), registered once per engine this
 * run can reach: PGlite and DuckDB always; PostgreSQL with TEST_DATABASE_URL, MariaDB with
 * TEST_MYSQL_URL (.ci/run sets both). Each case runs convey itself, end to end, against a local
 * receiver, and checks what arrived and what the ledger holds. The whole file runs with the
 * process's zone set to America/New_York (helpers/foreign-zone.ts): nothing may depend on it.
 */

const TABLE = (e: EngineFixture): string => `create table conversions (
  id ${e.types.text}, big_id ${e.types.bigint}, ts ${e.types.instant}, ts_naive ${e.types.naive},
  visitor ${e.types.text}, event_id ${e.types.text}, revenue ${e.types.bigint}, experiments ${e.types.json}
)`;

const MAPPING = `-- :window_start in a comment is not a parameter
select id as conversion_id, ts as occurred_at, visitor as visitor_id, event_id, revenue as revenue_cents, experiments
  from conversions
 where ts >= :window_start and ts < :window_end`;

interface Conversion {
  id: string;
  ts: string;
  ts_naive?: string;
  big_id?: string;
  visitor?: string | null;
  event_id?: string | null;
  revenue?: number | null;
  experiments?: string | null;
}

const conversion = (id: string, ts: string, extra: Partial<Conversion> = {}): Record<string, string | number | null> => ({
  id,
  big_id: null,
  ts,
  ts_naive: ts,
  visitor: `v-${id}`,
  event_id: '111',
  revenue: 500,
  experiments: '{"987654321": "1111111"}',
  ...extra,
});

interface Setup {
  project: TestProject;
  source: EngineDatabase;
  /** Writes jobs/orders.sql and .json against the receiver. */
  job(receiver: Receiver, sql?: string, settings?: Record<string, unknown>, protocol?: 'events' | 'classic'): void;
  run(args?: string[], options?: { signal?: AbortSignal }): ReturnType<TestProject['cli']>;
  /** What the ledger holds, by conversion id. */
  ledger(): Promise<Array<{ conversion_id: string; status: string; occurred_at: string; cursor_value: string }>>;
  useSource(config: Record<string, unknown>): void;
}

async function setUp(t: ExecutionContext, engine: EngineFixture, rows: Array<Record<string, string | number | null>>): Promise<Setup> {
  const project = await createTestProject();
  const source = await engine.create(project.dir);
  t.teardown(async () => {
    await source.close();
    await project.close();
  });
  await source.sql(TABLE(engine));
  if (rows.length) await source.insert('conversions', rows);
  const useSource = (config: Record<string, unknown>): void =>
    writeFileSync(join(project.dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse: config } }));
  useSource(source.config);
  return {
    project,
    source,
    useSource,
    job(receiver, sql = MAPPING, settings = {}, protocol = 'events') {
      const destination = protocol === 'events' ? eventsJob(receiver, settings) : classicJob(receiver, settings);
      project.writeJob('orders', sql, { start: '2026-01-01T00:00:00Z', ...destination });
    },
    run: (args = ['run', 'orders', '--json'], options = {}) => project.cli(args, options),
    async ledger() {
      const { rows: found } = await project.db.stateSql(
        `select conversion_id, status, occurred_at::text as occurred_at, cursor_value::text as cursor_value from convey.conversions order by conversion_id`,
      );
      return found as Array<{ conversion_id: string; status: string; occurred_at: string; cursor_value: string }>;
    },
  };
}

/** An Event API request body, as the dry run writes it. */
type Body = { visitors: Array<{ snapshots: Array<{ events: Array<{ uuid: string }> }> }> };

const ids = (list: Array<{ conversion_id: string }>): string[] => list.map((r) => r.conversion_id).sort();

/**
 * ava runs a file's tests at once; every case opens a state store, a source and a receiver, and
 * fifty of them together exhausted PostgreSQL's connections (max_connections 100, shared with the
 * other test files). A few at a time is as fast on two cores.
 */
const slots = { free: 4, waiting: [] as Array<() => void> };
async function oneOfFew<T>(fn: () => Promise<T>): Promise<T> {
  if (slots.free > 0) slots.free--;
  else await new Promise<void>((resolve) => slots.waiting.push(resolve));
  try {
    return await fn();
  } finally {
    const next = slots.waiting.shift();
    if (next) next();
    else slots.free++;
  }
}

function contract(engine: EngineFixture): void {
  const name = (what: string): string => `${engine.name}: ${what}`;
  const test = (title: string, body: (t: ExecutionContext) => Promise<void>): void => avaTest(title, (t) => oneOfFew(() => body(t)));

  test(name('a window is read to the microsecond: its start is included, its end is not, and the cursor keeps its microseconds'), async (t) => {
    const s = await setUp(t, engine, [
      conversion('before', '2026-03-01T00:00:00.999999Z'),
      conversion('first', '2026-03-01T00:00:01.000000Z'),
      conversion('second', '2026-03-01T00:00:01.000001Z'),
      conversion('last', '2026-03-01T00:00:01.999999Z'),
      conversion('end', '2026-03-01T00:00:02.000000Z'),
    ]);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver);
      const backfill = await s.run(['backfill', 'orders', '--from', '2026-03-01T00:00:01Z', '--to', '2026-03-01T00:00:02Z', '--json']);
      t.is(backfill.code, 0, backfill.stderr);
      const ledger = await s.ledger();
      t.deepEqual(ids(ledger), ['first', 'last', 'second']);
      t.deepEqual(ledger.map((r) => r.cursor_value).sort(), ['2026-03-01 00:00:01+00', '2026-03-01 00:00:01.000001+00', '2026-03-01 00:00:01.999999+00']);
      t.is(receiver.stats().unique, 3);
    });
  });

  test(name('rows sharing one cursor value across the point where a stopped run resumes are each sent once'), async (t) => {
    const shared = '2026-03-01T10:00:00.123456Z';
    const s = await setUp(t, engine, [
      ...Array.from({ length: 6 }, (_, i) => conversion(`early${i}`, `2026-03-01T09:00:0${i}Z`)),
      ...Array.from({ length: 30 }, (_, i) => conversion(`tie${String(i).padStart(2, '0')}`, shared)),
      ...Array.from({ length: 4 }, (_, i) => conversion(`late${i}`, `2026-03-01T11:00:0${i}Z`)),
    ]);
    const stop = new AbortController();
    let accepted = 0;
    // Stopped from inside the receiver once a third has arrived: the stop falls among the ties.
    await withReceiver({ protocol: 'events', refuse: () => (++accepted === 14 ? void stop.abort('SIGTERM') : undefined) }, async (receiver) => {
      s.job(receiver, MAPPING, { batchSize: 4, pageSize: 3, rateLimit: { concurrency: 1 } });
      const stopped = await s.run(['run', 'orders', '--json'], { signal: stop.signal });
      t.is(stopped.code, 143, stopped.stderr);
      t.true(receiver.stats().unique < 40, 'the stop came before the end');
      const rest = await s.run();
      t.is(rest.code, 0, rest.stderr);
      t.is(receiver.stats().unique, 40);
      t.is(receiver.stats().duplicates, 0);
      t.deepEqual(new Set((await s.ledger()).map((r) => r.status)), new Set(['sent']));
    });
  });

  test(name('late rows inside the lookback are sent; the rows already sent are not sent again'), async (t) => {
    const now = Date.now();
    const ago = (minutes: number): string => new Date(now - minutes * 60_000).toISOString();
    const s = await setUp(t, engine, [conversion('a', ago(30)), conversion('b', ago(20))]);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver, MAPPING, { lookback: 'PT1H' });
      const first = await s.run();
      t.is(first.code, 0, first.stderr);
      await s.source.insert('conversions', [conversion('late', ago(25))]);
      const second = await s.run();
      t.is(second.code, 0, second.stderr);
      t.like(second.json<SummaryJson>(), { read: 3, sent: 1, alreadySent: 2 });
      t.is(receiver.stats().unique, 3);
      t.is(receiver.stats().duplicates, 0);
    });
  });

  test(name("the source's own time zone, and the process's, change nothing: timestamps with and without a zone are read as the same instants"), async (t) => {
    const s = await setUp(t, engine, [conversion('a', '2026-03-01T12:00:00.000001Z')]);
    await s.source.foreignZone();
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      // occurred_at from the column without a zone (read as UTC), the cursor from the one with a zone.
      const sql = `select id as conversion_id, ts_naive as occurred_at, ts as loaded_at, visitor as visitor_id, event_id from conversions`;
      s.job(receiver, sql, { cursor: 'loaded_at' });
      const run = await s.run();
      t.is(run.code, 0, run.stderr);
      const [row] = await s.ledger();
      t.is(row?.occurred_at, '2026-03-01 12:00:00.000001+00');
      t.is(row?.cursor_value, '2026-03-01 12:00:00.000001+00');
      t.is(receiver.accepted()[0]?.timestamp, Date.parse('2026-03-01T12:00:00.000Z'));
    });
  });

  test(name('experiments keep the key order the SQL wrote, and ids beyond 2^53 arrive digit for digit'), async (t) => {
    const s = await setUp(t, engine, [
      conversion('a', '2026-03-01T12:00:00Z', { big_id: '9007199254740993', event_id: '9007199254740995', experiments: '{"987654321": "1111111", "876543210": "2222222"}' }),
    ]);
    await withReceiver({ protocol: 'classic' }, async (receiver) => {
      s.job(receiver, `select big_id as conversion_id, ts as occurred_at, visitor as visitor_id, 'purchase' as event_key, event_id, experiments from conversions`, {}, 'classic');
      const run = await s.run();
      t.is(run.code, 0, run.stderr);
      t.deepEqual(ids(await s.ledger()), ['9007199254740993']);
      const pairs = receiver.accepted()[0]?.raw as Array<[string, string]>;
      t.deepEqual(
        pairs.filter(([k]) => k.startsWith('x') || k === 'g'),
        [['x987654321', '1111111'], ['x876543210', '2222222'], ['g', '9007199254740995']],
      );
    });
  });

  test(name('result columns are read whatever the case they are written in'), async (t) => {
    const s = await setUp(t, engine, [conversion('a', '2026-03-01T12:00:00Z')]);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver, `select id AS Conversion_ID, ts AS OCCURRED_AT, visitor AS Visitor_Id, event_id AS EVENT_ID from conversions where ts >= :window_start`);
      const run = await s.run();
      t.is(run.code, 0, run.stderr);
      t.is(receiver.stats().unique, 1);
    });
  });

  test(name('NULL and JSON null in optional columns mean none'), async (t) => {
    const s = await setUp(t, engine, [
      conversion('sql-null', '2026-03-01T12:00:00Z', { revenue: null, experiments: null }),
      conversion('json-null', '2026-03-01T12:00:01Z', { revenue: null, experiments: 'null' }),
    ]);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver);
      const run = await s.run();
      t.is(run.code, 0, run.stderr);
      t.like(run.json<SummaryJson>(), { sent: 2, rejected: 0 });
      t.deepEqual(receiver.accepted().map((a) => a.revenue), [undefined, undefined]);
    });
  });

  test(name("a broken mapping exits 2 before anything is sent, naming the job's file and quoting the engine"), async (t) => {
    const s = await setUp(t, engine, [conversion('a', '2026-03-01T12:00:00Z')]);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      for (const [sql, engineSays] of [
        [MAPPING.replace('select id', 'selec id'), /syntax/i],
        [MAPPING.replace('visitor as visitor_id', 'visiter as visitor_id'), /visiter/],
        [MAPPING.replace('visitor as visitor_id', `${engine.missingFunction} as _x, visitor as visitor_id`), /json_build_thing/i],
      ] as const) {
        s.job(receiver, sql);
        const run = await s.run();
        t.is(run.code, 2, `${sql}\n${run.stderr}`);
        t.regex(run.stderr, /jobs\/orders\.sql/);
        t.regex(run.stderr, engineSays);
      }
      t.is(receiver.stats().requests, 0);
    });
  });

  test(name('an unreachable source exits 3 and says which setting to check'), async (t) => {
    const s = await setUp(t, engine, []);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.useSource(s.source.unreachable);
      s.job(receiver);
      const run = await s.run();
      t.is(run.code, 3, run.stderr);
      t.regex(run.stderr, /source \\"warehouse\\" cannot be reached/);
      t.regex(run.stderr, /config\/default\.json/);
    });
  });

  test(name('a dry run and a plan read exactly what the run then sends'), async (t) => {
    const s = await setUp(t, engine, [
      ...Array.from({ length: 12 }, (_, i) => conversion(`c${String(i).padStart(2, '0')}`, `2026-03-01T12:00:${String(i).padStart(2, '0')}.00000${i % 10}Z`)),
      conversion('no-visitor', '2026-03-01T12:00:30Z', { visitor: null }),
    ]);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver, MAPPING, { batchSize: 5, pageSize: 4 });
      const plan = await s.run(['plan', 'orders', '--json']);
      t.is(plan.code, 0, plan.stderr);
      t.like(plan.json(), { read: 13, wouldSend: 12, wouldReject: 1 });
      const dryRun = await s.run(['run', 'orders', '--dry-run']);
      t.is(dryRun.code, 0, dryRun.stderr);
      const planned = dryRun.stdout.trim().split('\n').map((line) => JSON.parse(line) as { body: Body });
      const run = await s.run();
      t.is(run.code, 0, run.stderr);
      t.like(run.json<SummaryJson>(), { read: 13, sent: 12, rejected: 1 });
      const uuids = planned.flatMap((p) => p.body.visitors.flatMap((v) => v.snapshots[0]!.events.map((e) => e.uuid))).sort();
      t.deepEqual(uuids, receiver.accepted().map((a) => a.uuid!).sort());
    });
  });

  test(name('rejects --replay reads the rejected conversions again through the fixed mapping and sends them'), async (t) => {
    const s = await setUp(t, engine, [conversion('ok', '2026-03-01T12:00:00Z'), conversion('anon1', '2026-03-01T12:00:01Z', { visitor: null }), conversion('anon2', '2026-03-01T12:00:02Z', { visitor: null })]);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver);
      t.like((await s.run()).json<SummaryJson>(), { sent: 1, rejected: 2 });
      s.job(receiver, MAPPING.replace('visitor as visitor_id', "coalesce(visitor, 'anonymous') as visitor_id"));
      const replay = await s.run(['rejects', 'orders', '--replay', '--json']);
      t.is(replay.code, 0, replay.stderr);
      t.like(replay.json<SummaryJson>(), { read: 2, sent: 2 });
      t.is(receiver.stats().unique, 3);
    });
  });

  const slow = engine.slowCondition;
  if (slow) {
    const slowMapping = `${MAPPING} and ${slow}`;
    /** Waits until the window's query runs on the server; an engine in the process gives no sign, so a moment. */
    const queryRunning = async (s: Setup): Promise<void> => {
      const server = s.source.server;
      if (server) await waitFor(async () => ((await server.openReads()) > 0 ? true : undefined), 'the query to start');
      else await new Promise((resolve) => setTimeout(resolve, 2000));
    };

    test(name('SIGTERM during a long query stops it at once, and the run exits 143'), async (t) => {
      const s = await setUp(t, engine, [conversion('a', '2026-03-01T12:00:00Z')]);
      await withReceiver({ protocol: 'events' }, async (receiver) => {
        s.job(receiver, slowMapping);
        const stop = new AbortController();
        const started = Date.now();
        const running = s.run(['run', 'orders', '--json'], { signal: stop.signal });
        await queryRunning(s);
        stop.abort('SIGTERM');
        const run = await running;
        t.is(run.code, 143, run.stderr);
        t.true(Date.now() - started < 60_000, 'the query was stopped, not waited for');
        if (s.source.server) t.is(await s.source.server.openReads(), 0, 'nothing is left running on the server');
      });
    });

    test(name('a query longer than statementTimeoutMs exits 3 and names the setting'), async (t) => {
      const s = await setUp(t, engine, [conversion('a', '2026-03-01T12:00:00Z')]);
      s.useSource({ ...s.source.config, statementTimeoutMs: 1000 });
      await withReceiver({ protocol: 'events' }, async (receiver) => {
        s.job(receiver, slowMapping);
        const run = await s.run();
        t.is(run.code, 3, run.stderr);
        t.regex(run.stderr, /statementTimeoutMs/);
        t.is(receiver.stats().requests, 0);
      });
    });
  }

  if (engine.location !== 'server') return;

  // Only a server can drop its connection mid-read.
  test(name('a connection dropped mid-read resumes after the last row read: rows sharing a cursor value are neither skipped nor repeated'), async (t) => {
    const s = await setUp(t, engine, [
      ...Array.from({ length: 40 }, (_, i) => conversion(`a${String(i).padStart(2, '0')}`, '2026-03-01T12:00:00.000001Z')),
      ...Array.from({ length: 40 }, (_, i) => conversion(`b${String(i).padStart(2, '0')}`, '2026-03-01T12:00:00.000002Z')),
    ]);
    const relay = await startRelay(s.source.server!);
    t.teardown(() => relay.close());
    s.useSource(s.source.server!.through(relay.port));
    relay.cutDuring('order by', 2500);
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver, MAPPING, { batchSize: 10, pageSize: 5 });
      const run = await s.run();
      t.is(run.code, 0, run.stderr);
      t.is(relay.cuts(), 1, 'the connection was cut during the read');
      t.regex(run.stderr, /resum/i);
      t.like(run.json<SummaryJson>(), { read: 80, sent: 80, rejected: 0 });
      t.is(receiver.stats().unique, 80);
      t.is(receiver.stats().duplicates, 0);
    });
  });

  test(name('with spoolAfter PT0S the query is read to its end and closed at once, however slowly the conversions go out'), async (t) => {
    const s = await setUp(t, engine, Array.from({ length: 100 }, (_, i) => conversion(`c${String(i).padStart(3, '0')}`, `2026-03-01T12:${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z`)));
    s.useSource({ ...s.source.config, spoolAfter: 'PT0S' });
    await withReceiver({ protocol: 'events', faults: { delayMs: 20 } }, async (receiver) => {
      s.job(receiver, MAPPING, { batchSize: 1, pageSize: 10, rateLimit: { concurrency: 1 } });
      const running = s.run();
      await waitFor(async () => ((await s.source.server!.openReads()) === 0 && receiver.stats().requests > 0 ? true : undefined), 'the read to close');
      // Sending takes 100 × 20 ms; without the spool the query stays open until the last few rows.
      t.true(receiver.stats().unique < 50, `the query was closed while conversions were being sent (${receiver.stats().unique} sent by then)`);
      const run = await running;
      t.is(run.code, 0, run.stderr);
      t.is(receiver.stats().unique, 100);
    });
  });

  test(name('a source going away mid-read exits 3; the next run sends the rest, nothing twice'), async (t) => {
    const s = await setUp(t, engine, Array.from({ length: 60 }, (_, i) => conversion(`c${String(i).padStart(2, '0')}`, `2026-03-01T12:00:${String(i).padStart(2, '0')}Z`)));
    const relay = await startRelay(s.source.server!);
    t.teardown(() => relay.close());
    s.useSource(s.source.server!.through(relay.port));
    relay.cutDuring('order by', 2500, { thenDown: true });
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      s.job(receiver, MAPPING, { batchSize: 5, pageSize: 5 });
      const failed = await s.run();
      t.is(failed.code, 3, failed.stderr);
      t.regex(failed.stderr, /source \\"warehouse\\"/);
      t.true(receiver.stats().unique < 60);
      relay.up();
      const next = await s.run();
      t.is(next.code, 0, next.stderr);
      t.is(receiver.stats().unique, 60);
      t.is(receiver.stats().duplicates, 0);
    });
  });
}

for (const engine of contractEngines()) contract(engine);
