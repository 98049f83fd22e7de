-- The reconciliation with what an analyst filters by (the Parquet file): the spec's columns
-- first, then the pseudonym and the plan's and census's facts about each study (no patient
-- data).
SELECT study_uid, tier, source_instances, received_instances, destination_instances, status,
       pseudonym, study_date, modality, device, phase_index + 1 AS phase, attempts,
       planned_mb, engine_status, reason, at_source, excluded_because
FROM report_scope
ORDER BY study_uid
