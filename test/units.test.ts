import test from 'ava';
import { checkRow } from '../src/check/check-row.ts';
import { orderedEntries } from '../src/check/json-entries.ts';
import { interpolate } from '../src/config/interpolate.ts';
import { InFlightLimit } from '../src/pipeline/in-flight-limit.ts';
import { Frontier } from '../src/pipeline/frontier.ts';
import { chunkRange, parseRange } from '../src/pipeline/range.ts';
import { incrementalWindow } from '../src/pipeline/window.ts';
import type { Param } from '../src/source/driver.ts';
import { duckdbDialect } from '../src/source/duckdb/dialect.ts';
import { mysqlDialect } from '../src/source/mysql/dialect.ts';
import { postgresDialect } from '../src/source/postgres/dialect.ts';
import { bindNamed, MYSQL_LEXER, parameterNames, POSTGRES_LEXER, statementBody, UnknownParameterError } from '../src/source/sql-text.ts';
import { parseFixedDuration, parseInstant, toEpochMillis, toEpochSeconds, type Instant } from '../src/time/instant.ts';
import type { JobConfig } from '../src/config/project.ts';

test('instants keep microseconds from every text form PostgreSQL and people write', (t) => {
  const parse = (v: unknown): string | undefined => parseInstant(v);
  t.is(parse('2026-03-01 12:00:00.123456+00'), '2026-03-01T12:00:00.123456Z');
  t.is(parse('2026-03-01 14:00:00.5+02'), '2026-03-01T12:00:00.500000Z');
  t.is(parse('2026-03-01 06:30:00-05:30'), '2026-03-01T12:00:00.000000Z');
  t.is(parse('2026-03-01T12:00:00Z'), '2026-03-01T12:00:00.000000Z');
  t.is(parse('2026-03-01 12:00:00'), '2026-03-01T12:00:00.000000Z', 'timestamp without time zone reads as UTC');
  t.is(parse('2026-03-01'), '2026-03-01T00:00:00.000000Z');
  t.is(parse(new Date('2026-03-01T12:00:00.123Z')), '2026-03-01T12:00:00.123000Z');
  t.is(parse('2026-02-31 00:00:00+00'), undefined, 'not a calendar date');
  t.is(parse('yesterday'), undefined);
  t.is(parse(null), undefined);
  const i = parseInstant('2026-03-01 12:00:00.999999+00')!;
  t.is(toEpochMillis(i), Date.parse('2026-03-01T12:00:00.999Z'), 'milliseconds truncate, never round into the next one');
  t.is(toEpochSeconds(i), Date.parse('2026-03-01T12:00:00Z') / 1000);
  t.true(('2026-03-01T12:00:00.000001Z' as Instant) > ('2026-03-01T12:00:00.000000Z' as Instant), 'the text sorts like the time');
});

test('durations of fixed length only', (t) => {
  t.is(parseFixedDuration('PT2H'), 7_200_000_000n);
  t.is(parseFixedDuration('P1D'), 86_400_000_000n);
  t.is(parseFixedDuration('PT0.5S'), 500_000n);
  t.is(parseFixedDuration('P1M'), undefined, 'a month has no fixed length');
  t.is(parseFixedDuration('2 hours'), undefined);
});

test('the window: watermark minus lookback to now minus settle, never before start', (t) => {
  const job = { start: '2026-01-01T00:00:00.000000Z', lookbackMicros: 7_200_000_000n, settleMicros: 600_000_000n } as JobConfig;
  const now = Date.parse('2026-03-10T12:00:00Z');
  t.deepEqual(incrementalWindow(job, undefined, now), { start: '2026-01-01T00:00:00.000000Z', end: '2026-03-10T11:50:00.000000Z' });
  t.deepEqual(incrementalWindow(job, '2026-03-10T06:00:00.000001Z' as Instant, now), { start: '2026-03-10T04:00:00.000001Z', end: '2026-03-10T11:50:00.000000Z' });
  t.is(incrementalWindow(job, '2026-01-01T01:00:00.000000Z' as Instant, now).start as string, '2026-01-01T00:00:00.000000Z');
});

test('backfill ranges: dates are whole local days, --to exclusive, chunks follow the calendar across DST', (t) => {
  const march = parseRange('2026-03-01', '2026-04-01', 'Europe/Berlin');
  t.deepEqual(march, { start: '2026-02-28T23:00:00.000000Z', end: '2026-03-31T22:00:00.000000Z' });
  const days = chunkRange(march, 'P1D', 'Europe/Berlin');
  t.is(days.length, 31);
  const dst = days.find((d) => d.start === '2026-03-28T23:00:00.000000Z')!;
  t.is(dst.end as string, '2026-03-29T22:00:00.000000Z', 'the day clocks go forward is 23 hours long');
  t.is(days.at(-1)!.end, march.end);
  t.deepEqual(chunkRange(parseRange('2026-03-01T00:00:00Z', '2026-03-01T10:00:00Z', 'UTC'), 'PT6H', 'UTC').map((c) => c.end), ['2026-03-01T06:00:00.000000Z', '2026-03-01T10:00:00.000000Z']);
  t.throws(() => parseRange('2026-03-02', '2026-03-01', 'UTC'), { message: /must be after --from/ });
  t.throws(() => parseRange('2026-03-01', '2026-03-02', 'Mars/Olympus'), { message: /not an IANA time zone/ });
});

test('named parameters are bound outside comments, strings, quoted names and dollar quotes, in each dialect', (t) => {
  const at = (value: string): Param => ({ type: 'instant', value });
  const params = { window_start: at('S'), window_end: at('E') };
  const sql = `select ':window_start' as s, "a:window_end" as q, $$ :window_end $$ as d, x::text -- :window_end
  /* :nope /* nested :nope */ */ from t where a >= :window_start and b < :window_end and c = :window_start and j ? 'k'`;
  const bound = bindNamed(sql, params, postgresDialect);
  t.deepEqual(bound.values, ['S', 'E', 'S']);
  t.true(bound.text.endsWith("where a >= $1::timestamptz and b < $2::timestamptz and c = $3::timestamptz and j ? 'k'"));
  t.true(bound.text.includes("':window_start' as s") && bound.text.includes('"a:window_end"') && bound.text.includes('$$ :window_end $$') && bound.text.includes('x::text -- :window_end'));
  t.throws(() => bindNamed('select :window_stop', params, postgresDialect), { instanceOf: UnknownParameterError, message: /:window_stop/ });
  t.deepEqual(bindNamed("select E'it\\'s :not'", {}, postgresDialect).values, []);

  // MySQL: backslash escapes in '…' and "…" strings, backtick names, # comments, `--` only before a space,
  // non-nesting block comments, and one ? per occurrence.
  const my = bindNamed(
    "select 'it\\'s :no', \"say \\\":no\\\"\", `a:no` # :no\n from t /* :no /* */ where a >= :window_start and b < :window_end and c = 1--:window_start\n",
    { window_start: at('2026-03-01T00:00:00.000001Z'), window_end: at('2026-03-02T00:00:00.000000Z') },
    mysqlDialect,
  );
  // UTC text without a zone, with its microseconds: DATETIME(6) keeps them.
  t.deepEqual(my.values, ['2026-03-01 00:00:00.000001', '2026-03-02 00:00:00.000000', '2026-03-01 00:00:00.000001']);
  t.true(my.text.includes('where a >= cast(? as datetime(6)) and b < cast(? as datetime(6)) and c = 1--cast(? as datetime(6))'), my.text);
  t.true(my.text.includes("'it\\'s :no'") && my.text.includes('`a:no` # :no'));
  t.deepEqual(parameterNames("select :a, ':b', `:c` -- :d\n, :e", MYSQL_LEXER), ['a', 'e']);

  // DuckDB: PostgreSQL's lexing, its own casts; a list is one placeholder per value.
  const duck = bindNamed('select * from t where id in (:ids) and at >= :window_start', { ids: { type: 'text list', value: ['a', 'b'] }, window_start: at('S') }, duckdbDialect);
  t.is(duck.text, 'select * from t where id in ($1::VARCHAR, $2::VARCHAR) and at >= $3::TIMESTAMPTZ');
  t.deepEqual(duck.values, ['a', 'b', 'S']);
});

test('a statement ends at its last token: trailing semicolons and comments go, in each dialect', (t) => {
  t.is(statementBody("select 1 -- a\n; -- refunds are another job\n", POSTGRES_LEXER), 'select 1');
  t.is(statementBody("select ';' as s; /* done */", POSTGRES_LEXER), "select ';' as s");
  t.is(statementBody('select 1; # MySQL comment\n', MYSQL_LEXER), 'select 1');
});

test('JSON objects keep the order they were written in, even with numeric keys', (t) => {
  t.deepEqual(orderedEntries('{"987654321": "1111111", "876543210": "2222222_3333333"}'), [
    ['987654321', '1111111'],
    ['876543210', '2222222_3333333'],
  ]);
  t.deepEqual(orderedEntries('{"b": {"x": [1, "}"]}, "a": "\\"q"}')?.map(([k]) => k), ['b', 'a']);
  t.is(orderedEntries('[1]'), undefined);
  t.is(orderedEntries('{'), undefined);
});

test('row checks: the forms a mapping may return, and the reasons for what it may not', (t) => {
  const base = { conversion_id: 7, occurred_at: '2026-03-01 00:00:00+00', visitor_id: 'v' };
  const ok = (row: Record<string, unknown>) => {
    const r = checkRow({ ...base, ...row }, 'occurred_at');
    if (!r.ok) throw new Error(r.rejection.reason);
    return r.conversion;
  };
  const code = (row: Record<string, unknown>) => {
    const r = checkRow({ ...base, ...row }, 'occurred_at');
    return r.ok ? 'ok' : r.rejection.code;
  };
  t.is(ok({}).conversionId, '7', 'an integer id becomes text');
  t.is(ok({ revenue_cents: '500' }).revenueCents, 500, 'int8 and numeric arrive as text');
  t.is(ok({ revenue_cents: '500.00' }).revenueCents, 500);
  t.is(ok({ revenue_cents: -250 }).revenueCents, -250, 'refunds are negative');
  t.is(code({ revenue_cents: 5.5 }), 'bad_revenue');
  t.is(code({ revenue_cents: '12.50' }), 'bad_revenue');
  t.deepEqual(ok({ experiments: { 1: ['2', 3] } }).experiments, [{ experimentId: '1', variationIds: ['2', '3'] }]);
  t.deepEqual(ok({ experiment_id: '5', variation_id: 6 }).experiments, [{ experimentId: '5', variationIds: ['6'] }]);
  t.is(code({ experiment_id: '5' }), 'bad_experiments');
  t.is(code({ experiments: '{"5": "six"}' }), 'bad_experiments');
  t.is(code({ experiments: 'not json' }), 'bad_experiments');
  t.is(code({ visitor_id: '' }), 'missing_visitor_id');
  t.is(code({ visitor_id: 'a\nb' }), 'bad_visitor_id');
  t.is(code({ conversion_id: 1.5 }), 'bad_conversion_id');
  t.is(code({ conversion_id: 'x'.repeat(600) }), 'bad_conversion_id');
  t.is(code({ occurred_at: null }), 'missing_occurred_at');
  t.is(code({ occurred_at: 'soon' }), 'bad_occurred_at');
  t.is(code({ event_id: 'abc' }), 'bad_event_id');
  t.is(code({ quantity: 1.5 }), 'bad_quantity');
  t.is(code({ value: 'NaN' }), 'bad_value');
  t.is(code({ tags: '{"a": {"nested": 1}}' }), 'bad_tags');
  t.is(code({ attributes: '[{"key": "plan", "value": "gold"}]' }), 'bad_attributes');
  t.deepEqual(ok({ attributes: [{ entity_id: 9, key: 'plan', value: true }] }).attributes, [{ type: 'custom', entityId: '9', key: 'plan', value: true }]);
  t.deepEqual(ok({ segments: '{"20": "gc", "10": 1}' }).segments, [['20', 'gc'], ['10', '1']]);
  const failed = checkRow({ ...base, revenue_cents: 1.5 }, 'occurred_at');
  t.like(failed, { ok: false, conversionId: '7', cursor: '2026-03-01T00:00:00.000000Z' });
});

test('config strings read the environment, with defaults, and name what is missing', (t) => {
  t.deepEqual(interpolate({ a: '${X}', b: ['${Y:-dflt}'], c: 3 }, { X: 'x' }, 'f.json'), { a: 'x', b: ['dflt'], c: 3 });
  t.deepEqual(interpolate('pre-${X}-post', { X: '1' }, 'f.json'), 'pre-1-post');
  t.throws(() => interpolate({ sources: { w: { connection: '${WAREHOUSE_URL}' } } }, {}, 'config/default.json'), {
    message: 'config/default.json: sources.w.connection reads ${WAREHOUSE_URL}, which is not set',
  });
});

test('the frontier moves the watermark only past batches that are recorded, in order', (t) => {
  const f = new Frontier();
  const [a, b, c] = [f.issue(), f.issue(), f.issue()];
  const at = (s: string) => `2026-03-01T00:00:0${s}.000000Z` as Instant;
  t.is(f.peek([[b, at('2')]]), undefined, 'batch 2 done before batch 1: no move');
  f.complete(b, at('2'));
  t.is(f.peek([[a, at('1')]]), at('2'), 'batch 1 done: moves past batches 1 and 2');
  f.complete(a, at('1'));
  t.is(f.peek([[c, undefined]]), undefined, 'a batch without rows moves nothing');
  f.complete(c, undefined);
  t.true(f.settled);
});

test('the frontier moves past batches recorded together, only as far as they close the gaps', (t) => {
  const f = new Frontier();
  const [a, b, c, d] = [f.issue(), f.issue(), f.issue(), f.issue()];
  const at = (s: string) => `2026-03-01T00:00:0${s}.000000Z` as Instant;
  t.is(f.peek([[b, at('2')], [d, at('4')]]), undefined, 'batches 2 and 4 before batch 1: no move');
  f.complete(b, at('2'));
  f.complete(d, at('4'));
  t.is(f.peek([[c, at('3')], [a, at('1')]]), at('4'), 'batches 1 and 3 together, in any order: past all four');
  t.is(f.peek([[a, undefined]]), at('2'), 'batch 1 without rows: as far as batch 2');
});

test('batches in flight: two until one is recorded, then as many as the fastest batch over the reader\'s pace needs, within the cap', (t) => {
  const limit = new InFlightLimit(17);
  t.is(limit.value, 2, 'nothing measured yet');
  limit.batchRead(2);
  limit.batchTook(9);
  t.is(limit.value, 6, 'a batch takes 9 ms, the reader 2 ms per batch: ceil(9 / 2) + 1');
  limit.batchTook(30);
  t.is(limit.value, 6, 'a slower batch (a queue behind a busy database) does not raise it');
  for (let i = 0; i < 30; i++) limit.batchRead(0.5);
  t.is(limit.value, 17, 'a reader four times as fast needs more, up to the cap (ceil(9 / 0.5) + 1 = 19)');
  const remote = new InFlightLimit(17);
  remote.batchRead(3);
  remote.batchTook(250);
  t.is(remote.value, 17, 'a slow endpoint (250 ms a request): as many as concurrency allows');
  const frozen = new InFlightLimit(17);
  frozen.batchRead(0);
  frozen.batchTook(0);
  t.is(frozen.value, 17, 'a clock that does not move (the fake clock) says nothing: the cap');
  t.is(new InFlightLimit(1).value, 1, 'never above the cap');
});
