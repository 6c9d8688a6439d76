-- The demo's warehouse table, in the embedded source (.convey/warehouse). Times are relative to
-- now so the rows fall inside the job's window whenever the demo runs.
create table phone_orders (
  order_id              text primary key,
  closed_at             timestamptz,
  optimizely_visitor_id text,
  event_key             text,
  event_id              text,
  total_cents           numeric,
  bucketing             json
);

-- The seed document's example: project 1234567, event example_event, goal 1234567, $5.00, and
-- experiments 987654321 → 1111111 and 876543210 → 2222222 + 3333333 (multivariate).
insert into phone_orders values
  ('SEED-1', now() - interval '3 hours', 'oeu1316548451038r0.12412704364396632', 'example_event', '1234567', 500,
   '{"987654321": "1111111", "876543210": "2222222_3333333"}');

-- 240 phone orders over the last two days, in two variations of experiment 987654321.
insert into phone_orders
select 'PH-' || lpad(g::text, 5, '0'),
       now() - interval '30 minutes' - (g * interval '12 minutes') - (g % 7) * interval '1 second',
       'oeu17' || lpad((g * 7919)::text, 11, '0') || 'r0.' || (g * 104729 % 1000003)::text,
       'phone_order', '7654321',
       1999 + (g * 37 % 8000),
       json_build_object('987654321', case when g % 2 = 0 then '1111111' else '1111112' end)
  from generate_series(1, 240) as g;

-- Two rows that cannot be sent, to show rejects: revenue in dollars, and no visitor id.
insert into phone_orders values
  ('PH-BAD-1', now() - interval '40 minutes', 'oeu1700000000001r0.5', 'phone_order', '7654321', 12.50, '{"987654321": "1111111"}'),
  ('PH-BAD-2', now() - interval '50 minutes', null, 'phone_order', '7654321', 4200, '{"987654321": "1111112"}');
