-- The executive summary: what the source holds (the census), then studies, instances and GB
-- planned, received, migrated (stored at the destination) and verified. GB = 10^9 bytes;
-- planned GB come from the plan's sizes. Excluded studies are counted apart, never planned.
WITH inst AS (
    SELECT i.study_uid, i.state, i.bytes, s.status
    FROM report_instances i JOIN report_scope s USING (study_uid)
), received AS (
    SELECT count(DISTINCT study_uid) AS studies, count(*) AS instances,
           coalesce(sum(bytes), 0) / 1e9 AS gb,
           count(DISTINCT study_uid) FILTER (WHERE state IN ('forwarded', 'verified'))
               AS migrated_studies,
           count(*) FILTER (WHERE state IN ('forwarded', 'verified')) AS migrated_instances,
           coalesce(sum(bytes) FILTER (WHERE state IN ('forwarded', 'verified')), 0) / 1e9
               AS migrated_gb,
           coalesce(sum(bytes) FILTER (WHERE status = 'verified'), 0) / 1e9 AS verified_gb
    FROM inst
)
SELECT count(*) FILTER (WHERE s.at_source = 'present') AS source_studies,
       coalesce(sum(s.source_instances) FILTER (WHERE s.at_source = 'present'), 0)
           AS source_instances,
       count(*) FILTER (WHERE s.at_source = 'present' AND s.source_instances IS NULL)
           AS source_unknown_counts,
       count(*) FILTER (WHERE s.at_source = 'gone') AS gone_studies,
       count(*) FILTER (WHERE s.at_source = 'not in a census') AS uncensused_studies,
       count(*) FILTER (WHERE s.status = 'excluded') AS excluded_studies,
       count(*) FILTER (WHERE s.status <> 'excluded') AS planned_studies,
       coalesce(sum(s.source_instances) FILTER (WHERE s.status <> 'excluded'), 0)
           AS planned_instances,
       count(*) FILTER (WHERE s.source_instances IS NULL AND s.status <> 'excluded')
           AS unknown_size_studies,
       coalesce(sum(s.planned_mb), 0) / 1e3 AS planned_gb,
       any_value(r.studies) AS received_studies, any_value(r.instances) AS received_instances,
       any_value(r.gb) AS received_gb,
       any_value(r.migrated_studies) AS migrated_studies,
       any_value(r.migrated_instances) AS migrated_instances,
       any_value(r.migrated_gb) AS migrated_gb,
       count(*) FILTER (WHERE s.status = 'verified') AS verified_studies,
       coalesce(sum(s.destination_instances) FILTER (WHERE s.status = 'verified'), 0)
           AS verified_instances,
       any_value(r.verified_gb) AS verified_gb,
       coalesce(sum(s.destination_instances), 0) AS destination_instances
FROM report_scope s, received r
