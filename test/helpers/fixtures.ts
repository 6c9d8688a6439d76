import { startReceiver, type Receiver, type ReceiverOptions } from '../../src/receiver/server.ts';
import type { RunSummary } from '../../src/pipeline/run-job.ts';
import { createTestProject, type TestProject } from './project.ts';

/** The source table most tests use, and the job SQL that maps it onto convey's columns. */
export const CONVERSIONS_TABLE = `
  create table conversions (
    id          text,
    at          timestamptz,
    loaded_at   timestamptz,
    visitor     text,
    event_id    text,
    event_key   text,
    revenue     numeric,
    experiments json
  )`;

export const CONVERSIONS_SQL = `-- test mapping; :window_start in a comment must not be bound
select id as conversion_id, at as occurred_at, visitor as visitor_id, event_id, event_key,
       revenue as revenue_cents, experiments
  from conversions
 where at >= :window_start and at < :window_end
`;

export interface Row {
  id: string;
  at: string;
  visitor?: string | null;
  event_id?: string | null;
  event_key?: string | null;
  revenue?: number | string | null;
  experiments?: string | null;
  loaded_at?: string | null;
}

/** `n` good rows, one per second from `start`, ids c0001…; revenue 100 + i cents. */
export function rows(n: number, start = '2026-03-01T00:00:00Z', prefix = 'c'): Row[] {
  const t0 = Date.parse(start);
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${String(i + 1).padStart(4, '0')}`,
    at: new Date(t0 + i * 1000).toISOString(),
    visitor: `v${i + 1}`,
    event_id: '111',
    event_key: 'purchase',
    revenue: 100 + i,
    experiments: '{"987654321": "1111111"}',
  }));
}

export async function insertRows(project: TestProject, list: Row[]): Promise<void> {
  for (let i = 0; i < list.length; i += 500) {
    const chunk = list.slice(i, i + 500);
    await project.db.sourceSql(
      `insert into conversions (id, at, loaded_at, visitor, event_id, event_key, revenue, experiments)
       select * from unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::numeric[], $8::json[])`,
      [
        chunk.map((r) => r.id),
        chunk.map((r) => r.at),
        chunk.map((r) => r.loaded_at ?? r.at),
        chunk.map((r) => (r.visitor === undefined ? 'v' : r.visitor)),
        chunk.map((r) => (r.event_id === undefined ? '111' : r.event_id)),
        chunk.map((r) => (r.event_key === undefined ? 'purchase' : r.event_key)),
        chunk.map((r) => (r.revenue === undefined ? null : r.revenue)),
        chunk.map((r) => (r.experiments === undefined ? null : r.experiments)),
      ],
    );
  }
}

export async function withReceiver<T>(options: ReceiverOptions, fn: (receiver: Receiver) => Promise<T>): Promise<T> {
  const receiver = await startReceiver(options);
  try {
    return await fn(receiver);
  } finally {
    await receiver.close();
  }
}

/** Job settings sending to a local receiver: no settle or lookback, small retries, so tests are quick. */
function jobTo(destination: Record<string, unknown>, concurrency: number, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    destination,
    settle: 'PT0S',
    lookback: 'PT0S',
    rateLimit: { concurrency },
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
    ...extra,
  };
}

/** To the receiver, or to any endpoint a test made (`{ url }`). */
export const eventsJob = (receiver: Pick<Receiver, 'url'>, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  jobTo({ type: 'optimizely-events', accountId: '1000', endpoint: receiver.url }, 4, extra);

export const classicJob = (receiver: Pick<Receiver, 'url'>, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  jobTo({ type: 'optimizely-classic', projectId: '1234567', endpoint: receiver.url }, 8, extra);

/** What `convey run --json` prints. */
export type SummaryJson = RunSummary;

/** `convey run orders --json`, which must exit 0 (its stderr is the message if not); its summary. */
export async function succeededRun(t: { is(actual: unknown, expected: unknown, message?: string): unknown }, project: TestProject, job = 'orders'): Promise<SummaryJson> {
  const run = await project.cli(['run', job, '--json']);
  t.is(run.code, 0, run.stderr);
  return run.json<SummaryJson>();
}

/** A test project with the conversions table filled with `list`, closed when the test ends. */
export async function projectWithRows(t: { teardown(fn: () => Promise<void>): void }, list: Row[]): Promise<TestProject> {
  const project = await createTestProject();
  t.teardown(() => project.close());
  await project.db.sourceSql(CONVERSIONS_TABLE);
  if (list.length) await insertRows(project, list);
  return project;
}

/** Phone orders where a refund is a row of its own: the mapping makes its revenue negative (mapping tests on every engine). */
export const PHONE_ORDERS_SQL = `select order_id as conversion_id, closed_at as occurred_at, visitor as visitor_id,
       'purchase' as event_key, '111' as event_id,
       case when kind = 'refund' then -total_cents else total_cents end as revenue_cents,
       bucketing as experiments
  from phone_orders
 where closed_at >= :window_start and closed_at < :window_end`;

/** A classic destination for commands that send nothing (`convey test`, `new`): its endpoint is never reached. */
export const CLASSIC_FOR_TESTS = { destination: { type: 'optimizely-classic', projectId: '1234567', endpoint: 'http://127.0.0.1:9/event', src: 'convey-test' } };
