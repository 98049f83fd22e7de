-- Instances the destination holds in another transfer syntax than the source sent them in
-- (lossless transcodes, made because the destination refused the received syntax): from,
-- to, how many instances and studies. The last successful store of each instance counts.
WITH stored AS (
    SELECT f.sop_instance_uid, f.study_uid,
           arg_max(f.transcoded_from, f.attempted_at) AS transcoded_from,
           arg_max(f.transcoded_to, f.attempted_at) AS transcoded_to
    FROM forwards f JOIN report_scope USING (study_uid)
    WHERE f.ok
    GROUP BY ALL
)
SELECT transcoded_from, transcoded_to, count(*) AS instances,
       count(DISTINCT study_uid) AS studies
FROM stored
WHERE transcoded_to IS NOT NULL
GROUP BY ALL
ORDER BY instances DESC, transcoded_from, transcoded_to
