-- The received instances of the studies in scope, one row each (the `instances` view folded
-- once, since several sections read it): state, size, series, and why it was set aside.
CREATE OR REPLACE TEMP TABLE report_instances AS
SELECT i.study_uid, i.series_uid, i.sop_instance_uid, i.state, i.bytes, i.received_at,
       i.quarantined
FROM instances i
JOIN report_scope USING (study_uid)
