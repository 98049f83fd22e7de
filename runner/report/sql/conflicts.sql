-- Conflicts found at the destination before a study was sent (events of kind 'conflict'):
-- the study (pseudonym and UID), the instance, what differed and how it was resolved. The
-- events hold UIDs only: never the Patient IDs compared. Each conflict counted once.
SELECT DISTINCT s.pseudonym, e.study_uid,
       coalesce(e.detail ->> 'sop_instance_uid', '') AS sop_instance_uid,
       e.detail ->> 'kind' AS kind, e.detail ->> 'conflict' AS conflict,
       e.detail ->> 'resolution' AS resolution
FROM events e JOIN report_scope s USING (study_uid)
WHERE e.kind = 'conflict'
ORDER BY e.study_uid, sop_instance_uid, kind
