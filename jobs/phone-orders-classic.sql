-- The same orders through the classic endpoint of the seed document (one GET per conversion).
-- Classic needs the experiments the visitor was in: bucketing is a json object
-- {"experimentId": "variationId"}; a multivariate variation is "id_id". Use json, not jsonb, to
-- keep the order of the x parameters as written.
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
