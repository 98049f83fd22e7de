-- Reconciliation per series, where the runner knows the series (from instances it received):
-- how many of each series' instances were received, stored at the destination, confirmed
-- there, and set aside. The source's count per series is not known (plans count studies).
SELECT s.pseudonym, i.study_uid, i.series_uid, s.status AS study_status,
       count(*) AS received_instances,
       count(*) FILTER (WHERE i.state IN ('forwarded', 'verified')) AS stored_instances,
       count(*) FILTER (WHERE i.state = 'verified') AS verified_instances,
       count(*) FILTER (WHERE i.state = 'quarantined') AS quarantined_instances,
       sum(i.bytes) AS bytes
FROM report_instances i
JOIN report_scope s USING (study_uid)
GROUP BY ALL
ORDER BY i.study_uid, i.series_uid
