-- The ledger's time span: its first and last recorded moment, whatever the report's scope.
SELECT min(moment) AS first_at, max(moment) AS last_at FROM (
    SELECT started_at AS moment FROM runs UNION ALL SELECT ended_at FROM runs
    UNION ALL SELECT started_at FROM retrieves UNION ALL SELECT ended_at FROM retrieves
    UNION ALL SELECT max(received_at) FROM receipts
    UNION ALL SELECT max(attempted_at) FROM forwards
    UNION ALL SELECT max(verified_at) FROM verifications
    UNION ALL SELECT max(occurred_at) FROM events
)
