-- Studies by reconciliation status, worst first: what is outstanding and how big it is.
SELECT status, count(*) AS studies,
       coalesce(sum(source_instances), 0) AS source_instances,
       coalesce(sum(destination_instances), 0) AS destination_instances,
       coalesce(sum(planned_mb), 0) / 1e3 AS planned_gb
FROM report_scope
GROUP BY status
ORDER BY list_position(['failed', 'incomplete', 'in_progress', 'pending', 'verified',
                        'excluded'], status)
