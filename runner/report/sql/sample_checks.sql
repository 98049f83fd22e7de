-- Deep verification by sampling (pacsmig verify with destination.verify_sample): the latest
-- comparison of each instance read back, as sent (ok), different, or not compared (null),
-- with the differences found (tags and Pixel Data only: no values).
WITH latest AS (
    SELECT e.study_uid, e.detail ->> 'sop_instance_uid' AS sop_instance_uid,
           arg_max(e.detail, e.occurred_at) AS detail
    FROM events e JOIN report_scope USING (study_uid)
    WHERE e.kind = 'sample_check'
    GROUP BY ALL
)
SELECT s.pseudonym, l.study_uid, l.sop_instance_uid,
       CAST(l.detail -> 'ok' AS BOOLEAN) AS ok,
       coalesce(array_to_string(CAST(l.detail -> 'differences' AS VARCHAR[]), '; '), '')
           AS differences
FROM latest l JOIN report_scope s USING (study_uid)
ORDER BY ok NULLS FIRST, l.study_uid, l.sop_instance_uid
