-- The studies a report covers, with their pseudonyms: every planned study, or one wave's.
-- Parameters: $salt (the site id), $date_from / $date_to (study date, inclusive; a study
-- without a date is outside any dated wave), $phase_index (0-based, as in `studies`).
CREATE OR REPLACE TEMP TABLE report_scope AS
SELECT s.study_uid, left(sha256($salt || ':' || s.study_uid), 10) AS pseudonym,
       s.study_date, s.modality, s.tier, s.device, s.planned_instances, s.planned_mb,
       s.phase_index, s.order_index, s.status AS engine_status, s.attempts, s.reason,
       r.source_instances, r.received_instances, r.destination_instances, r.status
FROM studies s
JOIN reconciliation r USING (study_uid)
WHERE ($date_from::DATE IS NULL OR s.study_date >= $date_from::DATE)
  AND ($date_to::DATE IS NULL OR s.study_date <= $date_to::DATE)
  AND ($phase_index::INTEGER IS NULL OR s.phase_index = $phase_index::INTEGER)
