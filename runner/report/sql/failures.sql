-- Retries and failures with their reasons, grouped: retrieves that did not succeed (or never
-- got a final response), C-STORE attempts the destination refused, instances set aside,
-- and destination checks that came back short. `instances` counts distinct SOP instances.
WITH retrieve_failures AS (
    SELECT 'retrieve' AS step,
           CASE WHEN r.ended_at IS NULL THEN 'no final response' ELSE r.category END
               AS category,
           coalesce(r.detail, '') AS reason, count(*) AS occurrences,
           count(DISTINCT r.study_uid) AS studies, sum(r.failed) AS instances
    FROM retrieves r JOIN report_scope USING (study_uid)
    WHERE r.ended_at IS NULL OR r.category NOT IN ('success', 'warning')
    GROUP BY ALL
), store_failures AS (
    SELECT 'store' AS step,
           CASE WHEN f.status IS NULL THEN 'no response'
                ELSE 'status 0x' || upper(printf('%04x', f.status)) END AS category,
           coalesce(f.reason, '') AS reason, count(*) AS occurrences,
           count(DISTINCT f.study_uid) AS studies,
           count(DISTINCT f.sop_instance_uid) AS instances
    FROM forwards f JOIN report_scope USING (study_uid)
    WHERE NOT f.ok
    GROUP BY ALL
), set_aside AS (
    SELECT 'quarantine' AS step, 'set aside' AS category, q.reason,
           count(*) AS occurrences, count(DISTINCT q.study_uid) AS studies,
           count(DISTINCT q.sop_instance_uid) AS instances
    FROM quarantines q JOIN report_scope USING (study_uid)
    GROUP BY ALL
), short_checks AS (
    SELECT 'verify' AS step, v.method AS category, coalesce(v.detail, '') AS reason,
           count(*) AS occurrences, count(DISTINCT v.study_uid) AS studies,
           NULL::BIGINT AS instances
    FROM verifications v JOIN report_scope USING (study_uid)
    WHERE NOT v.ok
    GROUP BY ALL
)
SELECT step, category, reason, occurrences, studies, instances FROM (
    SELECT * FROM retrieve_failures UNION ALL SELECT * FROM store_failures
    UNION ALL SELECT * FROM set_aside UNION ALL SELECT * FROM short_checks
)
ORDER BY list_position(['retrieve', 'store', 'quarantine', 'verify'], step),
         occurrences DESC, category, reason
