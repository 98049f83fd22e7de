-- Per source device: retrieves and failures, instances and bytes received, busy time (the
-- union of its retrieves' intervals, so parallel retrieves are not counted twice) and MB/s
-- over that busy time. A receipt without a retrieve is counted for the study's device.
WITH ret AS (
    SELECT r.* FROM retrieves r JOIN report_scope USING (study_uid)
), islands AS (
    SELECT device, started_at, coalesce(ended_at, started_at) AS ended_at,
           max(coalesce(ended_at, started_at)) OVER (
               PARTITION BY device ORDER BY started_at, retrieve_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM ret
), busy AS (
    SELECT device, sum(epoch(island_end - island_start)) AS busy_seconds
    FROM (
        SELECT device, island, min(started_at) AS island_start, max(ended_at) AS island_end
        FROM (SELECT *, sum(CASE WHEN reach IS NULL OR started_at > reach THEN 1 ELSE 0 END)
                            OVER (PARTITION BY device ORDER BY started_at
                                  ROWS UNBOUNDED PRECEDING) AS island
              FROM islands)
        GROUP BY device, island
    ) GROUP BY device
), counts AS (
    SELECT device, count(*) AS retrieves,
           count(*) FILTER (WHERE ended_at IS NOT NULL
                            AND category NOT IN ('success', 'warning')) AS failed_retrieves,
           count(*) FILTER (WHERE ended_at IS NULL) AS unfinished_retrieves,
           count(*) FILTER (WHERE purpose = 'redate') AS redates,
           avg(epoch(ended_at - started_at)) AS mean_retrieve_seconds
    FROM ret GROUP BY device
), got AS (
    SELECT coalesce(r.device, s.device, 'unknown') AS device, count(*) AS receipts,
           sum(c.bytes) AS bytes
    FROM receipts c
    JOIN report_scope s USING (study_uid)
    LEFT JOIN retrieves r USING (retrieve_id)
    GROUP BY ALL
)
SELECT device, coalesce(c.retrieves, 0) AS retrieves,
       coalesce(c.failed_retrieves, 0) AS failed_retrieves,
       coalesce(c.unfinished_retrieves, 0) AS unfinished_retrieves,
       coalesce(c.redates, 0) AS redates, c.mean_retrieve_seconds,
       coalesce(g.receipts, 0) AS receipts, coalesce(g.bytes, 0) AS bytes,
       coalesce(b.busy_seconds, 0) AS busy_seconds,
       CASE WHEN b.busy_seconds > 0 THEN g.bytes / 1e6 / b.busy_seconds END AS mb_per_second
FROM counts c
FULL JOIN got g USING (device)
LEFT JOIN busy b USING (device)
ORDER BY device
