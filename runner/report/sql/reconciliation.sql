-- The reconciliation for the studies in scope, one row per study the source holds or held
-- (the CSV): the spec's columns first, then the study's date and modality, whether the
-- source still holds it, why it is excluded (empty for a planned study), and its Accession
-- Number as the source answered it and as the rules make it (masked unless told not to;
-- empty after: the rules could not be judged on the study's C-FIND header).
SELECT study_uid, tier, source_instances, received_instances, destination_instances, status,
       study_date, modality, at_source, excluded_because, accession_before, accession_after
FROM report_scope
ORDER BY study_uid
