-- Studies the census found and the plan leaves out, by reason (the profile's window, its
-- modality filter, undated studies excluded, the exclusion list).
SELECT coalesce(c.reason, 'excluded') AS reason, count(*) AS studies,
       coalesce(sum(s.source_instances), 0) AS instances
FROM report_scope s
LEFT JOIN census_studies c USING (study_uid)
WHERE s.status = 'excluded'
GROUP BY ALL
ORDER BY studies DESC, reason
