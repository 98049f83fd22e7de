-- Every census taken (by run or sync), newest last: when, how, what it found and what the
-- sync found changed since the census before it, and what the run after it received.
SELECT c.taken_at, c.command, c.method, c.origin, c.of_source, c.complete, c.queries,
       c.since, c.cap, len(c.gaps) AS gaps, c.studies, c.instances, c.unknown_counts,
       c.planned, c.excluded, c.new_studies, c.changed_studies, c.gone_studies,
       (SELECT count(*) FROM receipts r JOIN retrieves t ON t.retrieve_id = r.retrieve_id
        WHERE t.started_at >= u.started_at AND t.purpose <> 'redate'
          AND (u.ended_at IS NULL OR t.started_at <= u.ended_at)) AS received_after
FROM censuses c
LEFT JOIN runs u ON u.run_id = c.run_id
ORDER BY c.taken_at
