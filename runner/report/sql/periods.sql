-- Per device, the periods between a $start_kind event and the next $end_kind event of the
-- same run (dead time, down time); repeated starts extend the open period. An event without
-- a device is site-wide ('all devices': the engine's dead time is). A period never closed
-- counts until its run ended (else the next run started, else $ledger_end). Device-wide, so
-- never narrowed to a wave.
WITH run_ends AS (
    SELECT run_id, coalesce(ended_at, lead(started_at) OVER (ORDER BY started_at, run_id))
               AS run_end
    FROM runs
), marks AS (
    SELECT coalesce(device, 'all devices') AS device, run_id, occurred_at, kind,
           coalesce(sum(CASE WHEN kind = $end_kind THEN 1 ELSE 0 END) OVER (
               PARTITION BY coalesce(device, 'all devices'), run_id
               ORDER BY occurred_at, event_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS period
    FROM events
    WHERE kind IN ($start_kind, $end_kind)
), periods AS (
    SELECT device, run_id, period,
           min(occurred_at) FILTER (WHERE kind = $start_kind) AS started_at,
           max(occurred_at) FILTER (WHERE kind = $end_kind) AS ended_at
    FROM marks GROUP BY device, run_id, period
)
SELECT p.device, count(*) AS periods, count(*) FILTER (WHERE p.ended_at IS NULL) AS open_periods,
       sum(epoch(coalesce(p.ended_at, greatest(coalesce(r.run_end, $ledger_end::TIMESTAMPTZ),
                                               p.started_at))
                 - p.started_at)) AS seconds
FROM periods p
LEFT JOIN run_ends r USING (run_id)
WHERE p.started_at IS NOT NULL
GROUP BY p.device
ORDER BY p.device = 'all devices' DESC, p.device
