-- The reconciliation for the studies in scope, one row per study the source holds or held
-- (the CSV): the spec's columns first, then the study's date and modality, whether the
-- source still holds it, and why it is excluded (empty for a planned study).
SELECT study_uid, tier, source_instances, received_instances, destination_instances, status,
       study_date, modality, at_source, excluded_because
FROM report_scope
ORDER BY study_uid
