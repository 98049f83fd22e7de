-- The spec's reconciliation view for the studies in scope, one row per study (the CSV).
SELECT study_uid, tier, source_instances, received_instances, destination_instances, status
FROM report_scope
ORDER BY study_uid
