-- How many instances each morphing rule changed: the rules (by index) that fired on the last
-- successful store of each instance, counted once per instance.
WITH stored AS (
    SELECT f.sop_instance_uid, arg_max(f.rules_fired, f.attempted_at) AS rules_fired
    FROM forwards f JOIN report_scope USING (study_uid)
    WHERE f.ok
    GROUP BY f.sop_instance_uid
)
SELECT rule_index, count(*) AS instances
FROM (SELECT unnest(rules_fired) AS rule_index FROM stored WHERE rules_fired IS NOT NULL)
GROUP BY rule_index
ORDER BY rule_index
