-- Bytes received per time bucket ($unit: 'hour', 'day' or 'week', in the session's time
-- zone, weeks from Monday) and tier, every receipt counted (a re-receipt moved data too);
-- buckets with nothing received between the first and the last are present with 0 bytes.
WITH got AS (
    SELECT date_trunc($unit, r.received_at) AS bucket, s.tier, r.bytes
    FROM receipts r JOIN report_scope s USING (study_uid)
), buckets AS (
    SELECT unnest(generate_series(min(bucket), max(bucket), ('1 ' || $unit)::INTERVAL))
        AS bucket
    FROM got
), tiers AS (
    SELECT DISTINCT tier FROM got
)
SELECT b.bucket, t.tier, coalesce(sum(g.bytes), 0) AS bytes, count(g.bytes) AS instances
FROM buckets b CROSS JOIN tiers t
LEFT JOIN got g ON g.bucket = b.bucket AND g.tier = t.tier
GROUP BY b.bucket, t.tier
ORDER BY b.bucket, list_position(['local', 'nearline', 'offline'], t.tier)
