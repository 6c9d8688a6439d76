import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import pg from 'pg';
import { isConveyError } from '../src/errors.ts';
import { readWatermark } from '../src/state/sql/watermarks.ts';
import { usingPostgres, type TestDatabases } from './helpers/databases.ts';
import { CONVERSIONS_SQL, classicJob, eventsJob, insertRows, rows, succeededRun, withReceiver, type SummaryJson, projectWithRows } from './helpers/fixtures.ts';
import { createTestProject } from './helpers/project.ts';

test('a first run sends every conversion in the window once, and a rerun sends nothing', async (t) => {
  const project = await projectWithRows(t, rows(1200));

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 500, pageSize: 300 }));
    const first = await project.cli(['run', 'orders', '--json']);
    t.is(first.code, 0, first.stderr);
    const s1 = first.json<SummaryJson>();
    t.like(s1, { job: 'orders', mode: 'run', status: 'succeeded', read: 1200, sent: 1200, alreadySent: 0, rejected: 0, failed: 0 });
    t.is(s1.watermark.before, null);
    t.is(s1.watermark.after, s1.window!.end, 'a completed window moves the watermark to its end');
    t.is(receiver.stats().unique, 1200);
    t.is(receiver.stats().duplicates, 0);

    // The rerun starts from the watermark (lookback 0): nothing new, nothing re-sent.
    const second = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(second, { status: 'succeeded', sent: 0, failed: 0 });
    t.is(second.window!.start, s1.window!.end);
    t.is(receiver.stats().unique, 1200);
    t.is(receiver.stats().duplicates, 0);
  });
});

test('a lookback re-reads late rows: the ledger skips those already sent and sends the late one', async (t) => {
  const project = await projectWithRows(t, rows(50));

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    const byLoadTime = `select id as conversion_id, at as occurred_at, loaded_at, visitor as visitor_id, event_id,
                               revenue as revenue_cents from conversions
                         where loaded_at >= :window_start and loaded_at < :window_end`;
    project.writeJob('orders', byLoadTime, eventsJob(receiver, { cursor: 'loaded_at', lookback: 'PT1H' }));
    const first = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(first, { read: 50, sent: 50 });

    // A conversion that happened in March but landed in the warehouse just now (cursor loaded_at).
    const justNow = new Date(Date.now() - 60_000).toISOString();
    await insertRows(project, [{ ...rows(1, '2026-03-01T00:00:00Z', 'late')[0]!, loaded_at: justNow }]);
    // And one already sent, reloaded (same id): must not be sent again.
    await project.db.sourceSql(`update conversions set loaded_at = $1 where id = 'c0007'`, [justNow]);

    const second = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(second, { read: 2, sent: 1, alreadySent: 1, rejected: 0 });
    t.is(receiver.stats().unique, 51);
    t.is(receiver.stats().duplicates, 0);
    t.true(receiver.accepted().some((a) => a.timestamp === Date.parse('2026-03-01T00:00:00Z') && a.entityId === '111'));
  });
});

test('rows younger than the settle time wait for the next run; the window end is exclusive', async (t) => {
  const project = await projectWithRows(t, []);
  const recent = new Date(Date.now() - 2 * 60_000).toISOString();
  await insertRows(project, [...rows(3), { ...rows(1, recent, 'recent')[0]! }]);

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { settle: 'PT10M' }));
    const run = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(run, { read: 3, sent: 3 });
    t.true(run.window!.end < recent.replace('Z', '000Z'), 'the window ends before the settle period');
    t.false(receiver.accepted().some((a) => a.visitorId === 'v1' && a.timestamp === Date.parse(recent)));
  });
});

test('malformed rows are rejected with their reason and the original row; the run goes on', async (t) => {
  const project = await projectWithRows(t, []);
  const good = rows(5);
  await insertRows(project, [
    ...good,
    { ...rows(1, '2026-03-02T00:00:00Z', 'dollars')[0]!, revenue: '12.50' },
    { ...rows(1, '2026-03-02T00:00:01Z', 'novisitor')[0]!, visitor: null },
    { ...rows(1, '2026-03-02T00:00:02Z', 'badevent')[0]!, event_id: 'purchase-1' },
    { ...rows(1, '2026-03-02T00:00:03Z', 'badexp')[0]!, experiments: '{"exp-1": "1"}' },
    { ...good[2]!, at: '2026-03-02T00:00:04Z' }, // c0003 again: a duplicate in the window
    { id: '', at: '2026-03-02T00:00:05Z' },
  ]);

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const result = await project.cli(['run', 'orders', '--json']);
    t.is(result.code, 0, 'rejects alone do not fail a run without --max-rejects');
    t.like(result.json<SummaryJson>(), { read: 11, sent: 5, rejected: 6 });

    const { rows: rejects } = await project.db.stateSql(`select conversion_id, reason_code, reason, row from convey.rejects order by reason_code`);
    const byCode = Object.fromEntries(rejects.map((r: { reason_code: string }) => [r.reason_code, r])) as unknown as Record<string, { conversion_id: string | null; reason: string; row: Record<string, unknown> }>;
    t.deepEqual(Object.keys(byCode).sort(), ['missing_conversion_id', 'bad_event_id', 'bad_experiments', 'bad_revenue', 'duplicate_conversion', 'missing_visitor_id'].sort());
    t.is(byCode.bad_revenue!.conversion_id, 'dollars0001');
    t.regex(byCode.bad_revenue!.reason, /revenue_cents "12.50" is not an integer \(revenue must be whole cents/);
    t.is(byCode.bad_revenue!.row.revenue_cents, '12.50', 'the original row is kept');
    t.is(byCode.duplicate_conversion!.conversion_id, 'c0003');
    t.regex(byCode.bad_event_id!.reason, /digits only/);
    t.is(receiver.stats().unique, 5);

    // --max-rejects turns too many rejects into a failed run (exit 1).
    await insertRows(project, [{ ...rows(1, '2026-03-03T00:00:00Z', 'x')[0]!, revenue: '1.5' }]);
    await project.db.stateSql(`delete from convey.watermarks`);
    const strict = await project.cli(['run', 'orders', '--json', '--max-rejects', '2']);
    t.is(strict.code, 1);
    t.is(strict.json<SummaryJson>().status, 'failed');
  });
});

test('a conversion id repeated in one batch, valid or malformed alike, is one reject per reason and the run goes on', async (t) => {
  const project = await projectWithRows(t, []);
  const once = rows(3);
  const fanOut = { ...once[0]!, at: '2026-03-02T00:00:00Z' }; // c0001 three times: a join that fans out
  const noVisitor = { ...rows(1, '2026-03-02T00:00:01Z', 'novisitor')[0]!, visitor: null };
  await insertRows(project, [...once, fanOut, { ...fanOut, at: '2026-03-02T00:00:02Z' }, noVisitor, { ...noVisitor, at: '2026-03-02T00:00:03Z' }]);

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    t.like(await succeededRun(t, project), { read: 7, sent: 3, rejected: 4 });
    const rejects = async (): Promise<unknown[]> =>
      (await project.db.stateSql(`select conversion_id, reason_code, times_seen from convey.rejects where resolved_at is null order by reason_code`)).rows;
    t.deepEqual(await rejects(), [
      { conversion_id: 'c0001', reason_code: 'duplicate_conversion', times_seen: 2 },
      { conversion_id: 'novisitor0001', reason_code: 'missing_visitor_id', times_seen: 2 },
    ]);

    // Read again (the watermark reset), the malformed pair adds to the same open reject.
    await project.db.stateSql(`delete from convey.watermarks`);
    t.like(await succeededRun(t, project), { sent: 0, alreadySent: 3 });
    t.like((await rejects())[1], { reason_code: 'missing_visitor_id', times_seen: 4 });
    t.is(receiver.stats().unique, 3);
  });
});

test('a batch whose keys are already in the ledger is claimed key by key: taken by another job, or repeated in this run', async (t) => {
  // Batches of 5. The first three are all new, so from the third on (at most two batches are in
  // flight before one is recorded) batches are claimed in one statement. The fourth holds four
  // conversions another job with the same account sent first, and c0002 again: its one-statement
  // claim fails, and it is claimed key by key.
  const project = await projectWithRows(t, [...rows(25), { ...rows(1)[0]!, id: 'c0002', at: '2026-03-01T00:00:18.500Z' }]);

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('first', `${CONVERSIONS_SQL} and id between 'c0016' and 'c0019'`, eventsJob(receiver, { batchSize: 5 }));
    t.like(await succeededRun(t, project, 'first'), { read: 4, sent: 4 });
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 5 }));
    t.like(await succeededRun(t, project, 'orders'), { read: 26, sent: 21, alreadySent: 4, rejected: 1, skipped: 0, failed: 0 });
    t.is(receiver.stats().unique, 25);
    t.is(receiver.stats().duplicates, 0, 'nothing sent twice');
    const { rows: rejects } = await project.db.stateSql(`select conversion_id, reason_code from convey.rejects where job = 'orders'`);
    t.deepEqual(rejects, [{ conversion_id: 'c0002', reason_code: 'duplicate_conversion' }]);
    const { rows: pending } = await project.db.stateSql(`select count(*)::int as n from convey.batches where status <> 'done'`);
    t.is(pending[0]!.n, 0, 'every batch recorded');
  });
});

test('a state store and source whose DateStyle is not ISO: the next run starts from the watermark, not from the start', async (t) => {
  const project = await projectWithRows(t, rows(4));
  // New sessions of both databases print dates as "01/03/2026 00:00:00 UTC". PostgreSQL: for this
  // test's database only (the server is shared). Embedded: for that PGlite folder, which reads
  // its configuration file each time it is opened (ALTER DATABASE is not applied to its session).
  const nonIso = usingPostgres
    ? `do $$ begin execute format('alter database %I set datestyle = %L', current_database(), 'SQL, DMY'); end $$`
    : `alter system set datestyle = 'SQL, DMY'`;
  await project.db.stateSql(nonIso);
  if (!usingPostgres) await project.db.sourceSql(nonIso);
  // The setting is in force for a session that does not set its own, as convey's do.
  t.is(await freshSessionDateStyle(project.db), 'SQL, DMY');
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const first = await succeededRun(t, project);
    t.like(first, { read: 4, sent: 4 });
    // The second run starts from the first one's watermark, not again from the job's start.
    const second = await succeededRun(t, project);
    t.like(second, { read: 0, sent: 0 });
    t.is(second.watermark.before, first.watermark.after);
    t.is(receiver.stats().unique, 4);
  });
});

/** DateStyle of a new session of the state store (the embedded one opens afresh for each call). */
async function freshSessionDateStyle(db: TestDatabases): Promise<string> {
  if (!db.stateUrl) return (await db.stateSql('show datestyle')).rows[0].DateStyle as string;
  const client = new pg.Client({ connectionString: db.stateUrl });
  await client.connect();
  try {
    return (await client.query<{ DateStyle: string }>('show datestyle')).rows[0]!.DateStyle;
  } finally {
    await client.end();
  }
}

// convey's own connections set DateStyle ISO; a session that does not (behind a pooler in
// transaction mode) is reached here with a client of the test's own. PostgreSQL only: the
// embedded store serves one session, convey's.
if (usingPostgres) {
  test('a watermark that does not read as a timestamp is a STATE_ERROR, never read as "no watermark"', async (t) => {
    const project = await projectWithRows(t, rows(2));
    await withReceiver({ protocol: 'events' }, async (receiver) => {
      project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
      t.like(await succeededRun(t, project), { sent: 2 });
    });
    const client = new pg.Client({ connectionString: project.db.stateUrl });
    await client.connect();
    t.teardown(() => client.end());
    await client.query("set datestyle = 'SQL, DMY'");
    const error = await t.throwsAsync(readWatermark(client, 'orders'));
    t.true(isConveyError(error, 'STATE_ERROR'), String(error));
    t.regex(error.message, /watermark of job "orders" reads .* not a timestamp/);
  });
}

test('a JSON null in an optional JSON column means none, as SQL NULL does', async (t) => {
  const project = await projectWithRows(t, rows(2));
  // What an ORM stores for "none" in a jsonb column by default; every such row was a reject.
  const sql = `select id as conversion_id, at as occurred_at, visitor as visitor_id, event_id, event_key,
                      case id when 'c0001' then 'null'::jsonb else experiments::jsonb end as experiments,
                      'null'::jsonb as tags, 'null'::jsonb as attributes
                 from conversions where at >= :window_start and at < :window_end`;
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', sql, eventsJob(receiver));
    t.like(await succeededRun(t, project), { read: 2, sent: 2, rejected: 0 });
    t.is(receiver.stats().unique, 2);
  });
});

test('a row read again without a conversion_id adds to its open reject, not a copy each run', async (t) => {
  const project = await projectWithRows(t, rows(2));
  await project.db.sourceSql(`insert into conversions (id, at, visitor) values (null, '2026-03-02T00:00:00Z', 'vx'), (null, null, 'vy'), ('nocursor1', null, 'vz')`);
  // No window in the SQL: rows without a cursor belong to no window and are read by every run.
  const sql = 'select id as conversion_id, at as occurred_at, visitor as visitor_id, event_id, event_key, revenue as revenue_cents, experiments from conversions';
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', sql, eventsJob(receiver));
    t.like(await succeededRun(t, project), { read: 5, sent: 2, rejected: 3 });
    await project.db.stateSql(`delete from convey.watermarks`);
    t.like(await succeededRun(t, project), { read: 5, alreadySent: 2, rejected: 3 });
    const { rows: open } = await project.db.stateSql(
      `select conversion_id, reason_code, row->>'visitor_id' as visitor, times_seen from convey.rejects where resolved_at is null order by visitor`,
    );
    t.deepEqual(open, [
      { conversion_id: null, reason_code: 'missing_conversion_id', visitor: 'vx', times_seen: 2 },
      { conversion_id: null, reason_code: 'missing_cursor', visitor: 'vy', times_seen: 2 },
      { conversion_id: 'nocursor1', reason_code: 'missing_cursor', visitor: 'vz', times_seen: 2 },
    ]);
  });
});

test('a dry run sends nothing, records nothing, and prints each request it would send as NDJSON', async (t) => {
  const project = await projectWithRows(t, rows(30));

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 10 }));
    const dry = await project.cli(['run', 'orders', '--dry-run']);
    t.is(dry.code, 0, dry.stderr);
    const lines = dry.stdout.trim().split('\n').map((l) => JSON.parse(l) as { method: string; url: string; body: { visitors: unknown[] } });
    t.is(lines.length, 3);
    t.true(lines.every((l) => l.method === 'POST' && l.url === receiver.url));
    t.is(lines.reduce((n, l) => n + l.body.visitors.length, 0), 30);
    t.is(receiver.stats().requests, 0, 'nothing was sent');
    if (project.db.kind === 'postgres') {
      const { rows: tables } = await project.db.stateSql(`select count(*)::int as n from information_schema.tables where table_schema = 'convey'`);
      t.is(tables[0].n, 0, 'not even the state schema was created');
    } else {
      t.false(existsSync(join(project.dir, '.convey', 'state', 'PG_VERSION')) && (await project.db.stateSql(`select to_regclass('convey.ledger') as t`)).rows[0].t !== null, 'no state written');
    }

    const out = join(project.dir, 'requests.ndjson');
    await project.cli(['run', 'orders', '--dry-run', '--out', out]);
    t.is(readFileSync(out, 'utf8').trim().split('\n').length, 3);

    // The real run afterwards sends exactly what the dry run showed.
    const run = (await project.cli(['run', 'orders', '--json'])).json<SummaryJson>();
    t.like(run, { sent: 30, requests: 3 });
  });
});

test('a broken mapping stops before anything is sent, naming the file and the fix', async (t) => {
  const project = await projectWithRows(t, rows(3));

  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('typo', CONVERSIONS_SQL.replace('revenue as revenue_cents', 'revenue as revenue'), eventsJob(receiver));
    const typo = await project.cli(['run', 'typo']);
    t.is(typo.code, 2);
    t.regex(typo.stderr, /jobs\/typo\.sql: it returns \\"revenue\\", which is not a convey column \(did you mean \\"revenue_cents\\"\?\)/);

    project.writeJob('noevent', CONVERSIONS_SQL.replace(' event_id,', ''), eventsJob(receiver));
    const noEvent = await project.cli(['run', 'noevent']);
    t.is(noEvent.code, 2);
    t.regex(noEvent.stderr, /the Event API needs event_id/);

    project.writeJob('param', CONVERSIONS_SQL.replace(':window_end', ':window_stop'), eventsJob(receiver));
    const param = await project.cli(['run', 'param']);
    t.is(param.code, 2);
    t.regex(param.stderr, /uses :window_stop, which convey does not bind/);

    project.writeJob('syntax', 'select from where', eventsJob(receiver));
    const syntax = await project.cli(['run', 'syntax']);
    t.is(syntax.code, 2);
    t.regex(syntax.stderr, /jobs\/syntax\.sql/);

    t.is(receiver.stats().requests, 0);
  });
});

test('bad job settings stop before anything is read, naming file, key and fix', async (t) => {
  const project = await createTestProject();
  t.teardown(() => project.close());
  project.writeJob('orders', CONVERSIONS_SQL, {
    destination: { type: 'optimizely-events', accountId: '1000' },
    rateLimit: { perSecond: -5, concurency: 3 },
    retry: { stopRunAfter: -1 },
    lookback: 'P1M',
  });
  const result = await project.cli(['run', 'orders']);
  t.is(result.code, 2);
  t.regex(result.stderr, /jobs\/orders\.json: rateLimit\.perSecond must be a number greater than 0/);
  t.regex(result.stderr, /rateLimit\.concurency is not a known setting \(did you mean \\"concurrency\\"\?\)/);
  t.regex(result.stderr, /lookback must be an ISO 8601 duration/);
  t.regex(result.stderr, /retry\.stopRunAfter must be at least 0/);

  const missing = await project.cli(['run', 'ordres']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /job \\"ordres\\" not found.*Did you mean \\"orders\\"/);
});

test('an unreachable state store exits 4 and an unreachable source exits 3, each saying what to check', async (t) => {
  const project = await projectWithRows(t, []);
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const state = await project.cli(['run', 'orders'], { env: { CONVEY_STATE_URL: 'postgres://postgres@127.0.0.1:1/none' } });
    t.is(state.code, 4);
    t.regex(state.stderr, /ECONNREFUSED.*STATE_ERROR.*CONVEY_STATE_URL/);

    writeFileSync(join(project.dir, 'config', 'default.json'), JSON.stringify({ sources: { warehouse: { client: 'pg', connection: 'postgres://postgres@127.0.0.1:1/none' } } }));
    const source = await project.cli(['run', 'orders']);
    t.is(source.code, 3);
    t.regex(source.stderr, /source \\"warehouse\\" cannot be reached: connect ECONNREFUSED.*Check the connection of source \\"warehouse\\" in config\/default.json/);
    t.is(receiver.stats().requests, 0);
  });
});

test('a tag or attribute number JSON cannot carry exactly is rejected with its reason, not sent altered', async (t) => {
  const project = await projectWithRows(t, rows(3));
  // A snowflake order id (bigint, above 2^53) put into tags: JSON.parse made 1234567890123456789
  // into 1234567890123456800 and the Event API got a different order id, without a word.
  const sql = `select id as conversion_id, at as occurred_at, visitor as visitor_id, event_id,
                      case id when 'c0001' then jsonb_build_object('order_id', 1234567890123456789::bigint)
                              when 'c0002' then jsonb_build_object('order_id', 42) end as tags,
                      case id when 'c0003' then json_build_array(json_build_object('entity_id', 12345678901234567890::numeric, 'key', 'plan', 'value', 'gold')) end as attributes
                 from conversions where at >= :window_start and at < :window_end`;
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', sql, eventsJob(receiver));
    t.like(await succeededRun(t, project), { read: 3, sent: 1, rejected: 2 });
    const rejects = (await project.db.stateSql(`select conversion_id, reason_code, reason from convey.rejects order by conversion_id`)).rows as Array<{ conversion_id: string; reason_code: string; reason: string }>;
    t.deepEqual(rejects.map((r) => [r.conversion_id, r.reason_code]), [['c0001', 'bad_tags'], ['c0003', 'bad_attributes']]);
    t.regex(rejects[0]!.reason, /tags\.order_id 1234567890123456800 .*::text/);
    const sent = receiver.accepted()[0]!.raw as { visitor: { snapshots: Array<{ events: Array<{ tags: unknown }> }> } };
    t.deepEqual(sent.visitor.snapshots[0]!.events[0]!.tags, { order_id: 42 });
  });
});

test('a segment value holding half of a UTF-16 pair is a reject, not a crash of the classic run', async (t) => {
  const project = await projectWithRows(t, rows(3));
  // JSON written by a browser that cut a string inside an emoji: "\\ud83d" alone. encodeURIComponent
  // threw URIError while encoding the classic URL, and the whole run ended as a bug (exit 70).
  const sql = `select id as conversion_id, at as occurred_at, visitor as visitor_id, event_key, experiments,
                      case id when 'c0002' then '{"5": "gold \\ud83d"}' when 'c0003' then '{"5": "gold \\ud83d\\ude00"}' end as segments
                 from conversions where at >= :window_start and at < :window_end`;
  await withReceiver({ protocol: 'classic' }, async (receiver) => {
    project.writeJob('orders', sql, classicJob(receiver));
    t.like(await succeededRun(t, project), { read: 3, sent: 2, rejected: 1 });
    const rejects = (await project.db.stateSql(`select conversion_id, reason_code from convey.rejects`)).rows;
    t.deepEqual(rejects, [{ conversion_id: 'c0002', reason_code: 'bad_segments' }]);
    t.true(receiver.accepted().some((a) => a.visitorId === 'v3'), 'a whole emoji is sent');
  });
});
