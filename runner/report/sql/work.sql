-- The total work the migration caused, as far as the runner can see it: retrieves by purpose
-- (re-dates fetch a study to move it into the local tier, then discard it; repeats are
-- retrieves of a study after its first), instances received more than once, store attempts,
-- destination checks. Recalls inside the source PACS are invisible to the runner.
WITH ret AS (
    SELECT r.study_uid, r.purpose, r.ended_at, r.category
    FROM retrieves r JOIN report_scope USING (study_uid)
), rec AS (
    SELECT c.sop_instance_uid, c.bytes FROM receipts c JOIN report_scope USING (study_uid)
), fwd AS (
    SELECT f.ok FROM forwards f JOIN report_scope USING (study_uid)
), chk AS (
    SELECT v.ok FROM verifications v JOIN report_scope USING (study_uid)
)
SELECT
    (SELECT count(*) FROM ret) AS retrieves,
    (SELECT count(*) FILTER (WHERE purpose = 'migrate') FROM ret) AS migrate_retrieves,
    (SELECT count(*) FILTER (WHERE purpose = 'repair') FROM ret) AS repair_retrieves,
    (SELECT count(*) FILTER (WHERE purpose = 'redate') FROM ret) AS redate_retrieves,
    (SELECT count(DISTINCT study_uid) FILTER (WHERE purpose = 'redate') FROM ret)
        AS redated_studies,
    (SELECT count(*) FILTER (WHERE purpose = 'redate' AND ended_at IS NOT NULL
                             AND category NOT IN ('success', 'warning')) FROM ret)
        AS failed_redates,
    (SELECT count(*) FILTER (WHERE purpose <> 'redate')
            - count(DISTINCT study_uid) FILTER (WHERE purpose <> 'redate') FROM ret)
        AS repeat_retrieves,
    (SELECT count(*) FROM rec) AS receipts,
    (SELECT count(*) - count(DISTINCT sop_instance_uid) FROM rec) AS repeat_receipts,
    (SELECT coalesce(sum(bytes), 0) FROM rec) AS bytes_received,
    (SELECT count(*) FROM fwd) AS store_attempts,
    (SELECT count(*) FILTER (WHERE NOT ok) FROM fwd) AS failed_store_attempts,
    (SELECT count(*) FROM chk) AS checks,
    (SELECT count(*) FILTER (WHERE NOT ok) FROM chk) AS short_checks
