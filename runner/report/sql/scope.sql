-- The studies a report covers, with their pseudonyms: every study the source holds or held
-- (the census), planned or excluded, or one wave's. Parameters: $salt (the site id),
-- $date_from / $date_to (study date, inclusive; a study without a date is outside any dated
-- wave), $phase_index (0-based, as in `studies`; excluded studies are in no phase), $masked
-- (accession numbers: all but the last four characters as `*`, as runner.morph.accession
-- writes them when the census is recorded; masking a masked number changes nothing).
CREATE OR REPLACE TEMP TABLE report_scope AS
SELECT r.study_uid, left(sha256($salt || ':' || r.study_uid), 10) AS pseudonym,
       r.study_date, r.modality, r.tier, s.device, s.planned_instances,
       coalesce(s.planned_mb, 0.0) AS planned_mb, s.phase_index, s.order_index,
       coalesce(s.status, 'pending') AS engine_status, coalesce(s.attempts, 0) AS attempts,
       s.reason, r.source_instances, r.received_instances, r.destination_instances, r.status,
       r.at_source, r.excluded_because,
       CASE WHEN $masked THEN repeat('*', length(r.accession) - 4 * (length(r.accession) > 4)::INT)
                              || right(r.accession, 4 * (length(r.accession) > 4)::INT)
            ELSE r.accession END AS accession_before,
       CASE WHEN $masked THEN repeat('*', length(r.accession_after)
                                          - 4 * (length(r.accession_after) > 4)::INT)
                              || right(r.accession_after, 4 * (length(r.accession_after) > 4)::INT)
            ELSE r.accession_after END AS accession_after
FROM reconciliation_detail r
LEFT JOIN studies s USING (study_uid)
WHERE ($date_from::DATE IS NULL OR r.study_date >= $date_from::DATE)
  AND ($date_to::DATE IS NULL OR r.study_date <= $date_to::DATE)
  AND ($phase_index::INTEGER IS NULL OR s.phase_index = $phase_index::INTEGER)
