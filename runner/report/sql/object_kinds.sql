-- The kinds of object received: each SOP class and transfer syntax as the source sent them,
-- with how many instances (each counted once) and how many of those the destination stored.
WITH received AS (
    SELECT r.sop_instance_uid,
           arg_max(r.sop_class_uid, r.received_at) AS sop_class_uid,
           arg_max(r.transfer_syntax, r.received_at) AS transfer_syntax
    FROM receipts r JOIN report_scope USING (study_uid)
    GROUP BY ALL
), stored AS (
    SELECT DISTINCT f.sop_instance_uid FROM forwards f JOIN report_scope USING (study_uid)
    WHERE f.ok
)
SELECT sop_class_uid, transfer_syntax, count(*) AS instances,
       count(s.sop_instance_uid) AS stored_instances
FROM received LEFT JOIN stored s USING (sop_instance_uid)
GROUP BY ALL
ORDER BY instances DESC, sop_class_uid, transfer_syntax
