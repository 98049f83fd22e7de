-- Totals per phase (1-based), tier, modality and study year, in one pass (grouping sets).
WITH got AS (
    SELECT study_uid, sum(bytes) AS bytes FROM report_instances GROUP BY study_uid
), facts AS (
    SELECT s.phase_index + 1 AS phase, s.tier, s.modality, year(s.study_date) AS year,
           s.status, s.source_instances, s.destination_instances, s.planned_mb, g.bytes
    FROM report_scope s LEFT JOIN got g USING (study_uid)
    WHERE s.status <> 'excluded'
)
SELECT CASE WHEN grouping(phase) = 0 THEN 'phase' WHEN grouping(tier) = 0 THEN 'tier'
            WHEN grouping(modality) = 0 THEN 'modality' ELSE 'year' END AS dimension,
       coalesce(CAST(coalesce(phase, year) AS VARCHAR), tier, modality, 'no date') AS key,
       count(*) AS studies,
       coalesce(sum(source_instances), 0) AS planned_instances,
       coalesce(sum(planned_mb), 0) / 1e3 AS planned_gb,
       coalesce(sum(bytes), 0) / 1e9 AS received_gb,
       count(*) FILTER (WHERE status = 'verified') AS verified_studies,
       coalesce(sum(destination_instances), 0) AS destination_instances,
       count(*) FILTER (WHERE status <> 'verified') AS outstanding_studies
FROM facts
GROUP BY GROUPING SETS ((phase), (tier), (modality), (year))
ORDER BY list_position(['phase', 'tier', 'modality', 'year'], dimension),
         phase, list_position(['local', 'nearline', 'offline'], tier), modality,
         year NULLS LAST
