-- Every study in scope that is not verified, worst first, with why and how often it was
-- tried: the engine's reason (else the destination's last short count, else the last failed
-- retrieve) and instances set aside; a study with none of these is explained by its status.
-- Studies not started (pending) stop after the first $pending_shown in plan order: mid-way
-- through a migration they can be most of it, and reconciliation.csv lists every one.
WITH quar AS (
    SELECT i.study_uid, count(*) AS quarantined, arg_max(i.quarantined, i.received_at) AS reason
    FROM report_instances i
    WHERE i.state = 'quarantined'
    GROUP BY i.study_uid
), checks AS (
    SELECT v.study_uid, count(*) AS checks, arg_max(v.ok, v.verified_at) AS ok,
           arg_max(v.found, v.verified_at) AS found,
           arg_max(v.expected, v.verified_at) AS expected,
           arg_max(v.detail, v.verified_at) AS detail
    FROM verifications v JOIN report_scope USING (study_uid)
    GROUP BY v.study_uid
), failed_retrieve AS (
    SELECT r.study_uid,
           arg_max(r.category || coalesce(': ' || r.detail, ''), r.started_at) AS last_failure
    FROM retrieves r JOIN report_scope USING (study_uid)
    WHERE r.ended_at IS NOT NULL AND r.category NOT IN ('success', 'warning')
    GROUP BY r.study_uid
), explained AS (
    SELECT s.*, coalesce(q.quarantined, 0) AS quarantined_instances,
           coalesce(c.checks, 0) AS checks,
           nullif(concat_ws('; ',
               s.reason,
               CASE WHEN q.quarantined > 0 THEN
                   q.quarantined || ' instance(s) set aside: ' || q.reason END,
               CASE WHEN s.reason IS NULL THEN coalesce(
                   CASE WHEN NOT c.ok THEN
                       'destination holds ' || c.found || coalesce(' of ' || c.expected, '')
                       || ' instance(s)' || coalesce(' (' || c.detail || ')', '') END,
                   f.last_failure) END), '') AS known_reason
    FROM report_scope s
    LEFT JOIN quar q USING (study_uid)
    LEFT JOIN checks c USING (study_uid)
    LEFT JOIN failed_retrieve f USING (study_uid)
    WHERE s.status NOT IN ('verified', 'excluded')
)
SELECT pseudonym, study_uid, status, tier, modality, study_date, device,
       phase_index + 1 AS phase, source_instances, received_instances, destination_instances,
       quarantined_instances, attempts, checks,
       coalesce(CASE WHEN at_source = 'gone' THEN
                    'no longer at the source (deleted or merged there): a later census did '
                    'not find it' || coalesce('; ' || known_reason, '') END,
                known_reason, CASE status
           WHEN 'pending' THEN 'not started yet'
           WHEN 'in_progress' THEN 'started, not yet checked at the destination'
           WHEN 'incomplete' THEN 'the destination holds fewer instances than the source'
           ELSE 'given up without a recorded reason' END) AS reason
FROM explained
QUALIFY status <> 'pending'
     OR row_number() OVER (PARTITION BY status ORDER BY phase_index, order_index, study_uid)
        <= $pending_shown
ORDER BY list_position(['failed', 'incomplete', 'in_progress', 'pending'], status),
         phase_index, order_index, study_uid
