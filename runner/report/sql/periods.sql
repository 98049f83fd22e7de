-- Per device, the periods between a $start_kind event and the next $end_kind event (dead
-- time, down time): repeated starts extend the open period; a period still open at the end
-- of the ledger counts until $ledger_end. Device-wide, so never narrowed to a wave.
WITH marks AS (
    SELECT device, occurred_at, kind,
           coalesce(sum(CASE WHEN kind = $end_kind THEN 1 ELSE 0 END) OVER (
               PARTITION BY device ORDER BY occurred_at, event_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS period
    FROM events
    WHERE kind IN ($start_kind, $end_kind) AND device IS NOT NULL
), periods AS (
    SELECT device, period, min(occurred_at) FILTER (WHERE kind = $start_kind) AS started_at,
           max(occurred_at) FILTER (WHERE kind = $end_kind) AS ended_at
    FROM marks GROUP BY device, period
)
SELECT device, count(*) AS periods, count(*) FILTER (WHERE ended_at IS NULL) AS open_periods,
       sum(epoch(coalesce(ended_at, greatest($ledger_end::TIMESTAMPTZ, started_at))
                 - started_at)) AS seconds
FROM periods
WHERE started_at IS NOT NULL
GROUP BY device
ORDER BY device
