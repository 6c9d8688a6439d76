-- Orders closed by phone, sent to Optimizely's Event API.
--
-- A plain SELECT: each alias is a convey column (README "Writing a job"). convey wraps this query
-- with the window, the order and the paging; :window_start and :window_end are bound timestamps
-- you may use so the warehouse reads only the partitions it needs.
select
  o.order_id              as conversion_id,
  o.closed_at             as occurred_at,
  o.optimizely_visitor_id as visitor_id,
  o.event_key             as event_key,
  o.event_id              as event_id,
  o.total_cents           as revenue_cents,
  o.bucketing             as experiments
from phone_orders o
where o.closed_at >= :window_start
  and o.closed_at <  :window_end
