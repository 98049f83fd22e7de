-- What the source holds (the latest state of every study its censuses found, gone ones
-- left out) by tier, modality and study year, planned and excluded: the census's totals.
WITH held AS (
    SELECT tier, modality, year(study_date) AS year, status, source_instances
    FROM report_scope WHERE at_source = 'present'
)
SELECT CASE WHEN grouping(tier) = 0 THEN 'tier' WHEN grouping(modality) = 0 THEN 'modality'
            ELSE 'year' END AS dimension,
       coalesce(tier, modality, CAST(year AS VARCHAR), 'no date') AS key,
       count(*) AS studies,
       coalesce(sum(source_instances), 0) AS instances,
       count(*) FILTER (WHERE source_instances IS NULL) AS unknown_counts,
       count(*) FILTER (WHERE status <> 'excluded') AS planned,
       count(*) FILTER (WHERE status = 'excluded') AS excluded,
       count(*) FILTER (WHERE status = 'verified') AS verified
FROM held
GROUP BY GROUPING SETS ((tier), (modality), (year))
ORDER BY list_position(['tier', 'modality', 'year'], dimension),
         list_position(['local', 'nearline', 'offline'], tier), modality, year NULLS LAST
