"""The ledger's read models as SQL views, each as its migrations create it (the views of
earlier versions stay as they were: a migration is history). `instances` folds the instance
facts into one row per instance; `reconciliation_detail` is every study the source holds or
held, and `reconciliation` the spec's columns of it."""

from __future__ import annotations

# One row per received instance, described by its latest receipt. The fact tables are
# joined on (sop_instance_uid, study_uid) so that a filter on study_uid reaches every one.
# state: quarantined (set aside after its last receipt), verified (confirmed at the
# destination), forwarded (a successful C-STORE after its last receipt), else received.
INSTANCES_VIEW = """
CREATE OR REPLACE VIEW instances AS
WITH rec AS (
    SELECT sop_instance_uid, study_uid, max(received_at) AS received_at,
           arg_max({'series_uid': series_uid, 'sop_class_uid': sop_class_uid,
                    'transfer_syntax': transfer_syntax, 'retrieve_id': retrieve_id,
                    'bytes': bytes, 'spool_name': spool_name}, received_at) AS latest
    FROM receipts GROUP BY sop_instance_uid, study_uid
), fwd AS (
    SELECT sop_instance_uid, study_uid,
           max(attempted_at) FILTER (WHERE ok) AS forwarded_at,
           count(*) AS forward_attempts,
           arg_max(status, attempted_at) AS forward_status,
           arg_max(reason, attempted_at) AS forward_reason,
           arg_max(dest_sop_instance_uid, attempted_at) FILTER (WHERE ok)
               AS dest_sop_instance_uid
    FROM forwards GROUP BY sop_instance_uid, study_uid
), conf AS (
    SELECT sop_instance_uid, study_uid, min(confirmed_at) AS verified_at
    FROM confirmations GROUP BY sop_instance_uid, study_uid
), quar AS (
    SELECT sop_instance_uid, study_uid, max(quarantined_at) AS quarantined_at,
           arg_max(reason, quarantined_at) AS reason
    FROM quarantines GROUP BY sop_instance_uid, study_uid
)
SELECT r.sop_instance_uid, r.study_uid, r.latest.series_uid AS series_uid,
       r.latest.sop_class_uid AS sop_class_uid, r.latest.transfer_syntax AS transfer_syntax,
       r.latest.retrieve_id AS retrieve_id, r.received_at, r.latest.bytes AS bytes,
       r.latest.spool_name AS spool_name,
       f.forwarded_at, f.forward_status, coalesce(f.forward_attempts, 0) AS forward_attempts,
       f.forward_reason, f.dest_sop_instance_uid, c.verified_at,
       CASE WHEN q.quarantined_at >= r.received_at THEN q.reason END AS quarantined,
       CASE WHEN q.quarantined_at >= r.received_at THEN 'quarantined'
            WHEN c.verified_at IS NOT NULL THEN 'verified'
            WHEN f.forwarded_at >= r.received_at THEN 'forwarded'
            ELSE 'received' END AS state
FROM rec r
LEFT JOIN fwd f ON f.sop_instance_uid = r.sop_instance_uid AND f.study_uid = r.study_uid
LEFT JOIN conf c ON c.sop_instance_uid = r.sop_instance_uid AND c.study_uid = r.study_uid
LEFT JOIN quar q ON q.sop_instance_uid = r.sop_instance_uid AND q.study_uid = r.study_uid
"""

# Version 5: the view also gives each instance's latest content checksum (the same view,
# with the checksum carried in the receipt's struct and shown).
INSTANCES_VIEW_5 = INSTANCES_VIEW.replace(
    "'bytes': bytes, 'spool_name': spool_name}, received_at) AS latest",
    "'bytes': bytes, 'spool_name': spool_name, 'checksum': checksum},\n"
    "                   received_at) AS latest",
).replace("       r.latest.spool_name AS spool_name,",
          "       r.latest.spool_name AS spool_name, r.latest.checksum AS checksum,")

# What each study's instance facts add up to: received, confirmed one by one, reported by
# its (non re-date) retrieves, and its latest check (both reconciliation views use them).
STUDY_COUNTS = """WITH got AS (
    SELECT study_uid, count(DISTINCT sop_instance_uid) AS received
    FROM receipts GROUP BY study_uid
), conf AS (
    SELECT study_uid, count(DISTINCT sop_instance_uid) AS confirmed
    FROM confirmations GROUP BY study_uid
), reported AS (
    SELECT study_uid, count(*) AS retrieves,
           nullif(max(coalesce(completed, 0) + coalesce(failed, 0) + coalesce(warning, 0)
                      + coalesce(remaining, 0)), 0) AS reported
    FROM retrieves WHERE purpose <> 'redate' GROUP BY study_uid
), latest AS (
    SELECT study_uid, arg_max(ok, verified_at) AS ok, arg_max(found, verified_at) AS found
    FROM verifications GROUP BY study_uid
)"""

# The spec's view. source = planned count, else the largest count a (non re-date) retrieve
# reported; destination = instances confirmed one by one, else the latest check's `found`
# (count-only checks). Status: verified when the latest check is ok and nothing is short;
# failed when the engine gave up; incomplete when checked and short; in_progress once any
# work started; pending otherwise.
RECONCILIATION_VIEW = f"""
CREATE OR REPLACE VIEW reconciliation AS
{STUDY_COUNTS}, facts AS (
    SELECT s.study_uid, s.tier, s.status AS engine_status,
           coalesce(s.planned_instances, rep.reported) AS source_instances,
           coalesce(g.received, 0) AS received_instances,
           coalesce(nullif(c.confirmed, 0), l.found, 0) AS destination_instances,
           l.ok AS checked_ok, l.study_uid IS NOT NULL AS checked,
           coalesce(rep.retrieves, 0) AS retrieves
    FROM studies s
    LEFT JOIN got g USING (study_uid)
    LEFT JOIN conf c USING (study_uid)
    LEFT JOIN reported rep USING (study_uid)
    LEFT JOIN latest l USING (study_uid)
)
SELECT study_uid, tier, source_instances, received_instances, destination_instances,
       CASE WHEN checked_ok AND destination_instances >= coalesce(source_instances, 0)
                THEN 'verified'
            WHEN engine_status = 'failed' THEN 'failed'
            WHEN checked THEN 'incomplete'
            WHEN received_instances > 0 OR retrieves > 0 OR engine_status <> 'pending'
                THEN 'in_progress'
            ELSE 'pending' END AS status
FROM facts
"""

# A study's status and whether the source holds it, from the columns of `facts` below (also
# runner.ledger.study_status's, for a few studies).
STATUS_CASE = """CASE WHEN checked_ok AND destination_instances >= coalesce(source_instances, 0)
                THEN 'verified'
            WHEN engine_status = 'failed' THEN 'failed'
            WHEN checked THEN 'incomplete'
            WHEN received_instances > 0 OR retrieves > 0 OR engine_status <> 'pending'
                THEN 'in_progress'
            WHEN disposition = 'excluded' THEN 'excluded'
            ELSE 'pending' END"""
AT_SOURCE_CASE = """CASE WHEN gone_at IS NOT NULL THEN 'gone' WHEN in_census THEN 'present'
            ELSE 'not in a census' END"""


# Every study the source holds (or held), planned or not, with the spec's columns and the
# census's (study date, modality, whether the source still holds it, why it is excluded).
# source_instances = the census's count, else the planned count, else the largest
# count a (non re-date) retrieve reported. Status as in version 2, and `excluded` for a
# study the census found and the plan leaves out (nothing done with it).
def _reconciliation_detail(census_columns: str = "", columns: str = "",
                           counts: str = STUDY_COUNTS) -> str:
    """The view, with `census_columns` of census_studies (`c.`) carried through as
    `columns` (added by later versions), over the study counts `counts`."""
    return f"""
CREATE OR REPLACE VIEW reconciliation_detail AS
{counts}, every_study AS (
    SELECT coalesce(c.study_uid, s.study_uid) AS study_uid,{census_columns}
           coalesce(s.tier, c.tier) AS tier,
           coalesce(c.study_date, s.study_date) AS study_date,
           coalesce(c.modality, s.modality) AS modality,
           coalesce(s.status, 'pending') AS engine_status,
           c.instances AS census_instances, s.planned_instances,
           c.disposition, c.detail AS excluded_because, c.gone_at,
           c.study_uid IS NOT NULL AS in_census
    FROM census_studies c FULL OUTER JOIN studies s ON s.study_uid = c.study_uid
), facts AS (
    SELECT e.*, coalesce(e.census_instances, e.planned_instances, rep.reported)
               AS source_instances,
           coalesce(g.received, 0) AS received_instances,
           coalesce(nullif(c.confirmed, 0), l.found, 0) AS destination_instances,
           l.ok AS checked_ok, l.study_uid IS NOT NULL AS checked,
           coalesce(rep.retrieves, 0) AS retrieves
    FROM every_study e
    LEFT JOIN got g USING (study_uid)
    LEFT JOIN conf c USING (study_uid)
    LEFT JOIN reported rep USING (study_uid)
    LEFT JOIN latest l USING (study_uid)
)
SELECT study_uid, tier, source_instances, received_instances, destination_instances,
       {STATUS_CASE} AS status,
       study_date, modality,
       {AT_SOURCE_CASE} AS at_source,
       CASE WHEN disposition = 'excluded' THEN excluded_because END AS excluded_because{columns}
FROM facts
"""


RECONCILIATION_DETAIL_VIEW = _reconciliation_detail()
# Version 6: the study's Accession Number before and after the rules (masked unless the
# profile said otherwise when the census was recorded).
RECONCILIATION_DETAIL_VIEW_6 = _reconciliation_detail(
    "\n           c.accession, c.accession_after,", ",\n       accession, accession_after")

# Version 7: the same view over the per-study state the writer keeps (runner.ledger.
# study_state): received and confirmed instances are one row per study, not a fold of every
# instance fact, so `status`, the scheduler's reads and the reconciliation scan the studies.
STUDY_COUNTS_7 = STUDY_COUNTS.replace("""got AS (
    SELECT study_uid, count(DISTINCT sop_instance_uid) AS received
    FROM receipts GROUP BY study_uid
), conf AS (
    SELECT study_uid, count(DISTINCT sop_instance_uid) AS confirmed
    FROM confirmations GROUP BY study_uid
)""", """got AS (
    SELECT study_uid, received FROM study_state
), conf AS (
    SELECT study_uid, confirmed FROM study_state
)""")
RECONCILIATION_DETAIL_VIEW_7 = _reconciliation_detail(
    "\n           c.accession, c.accession_after,", ",\n       accession, accession_after",
    STUDY_COUNTS_7)

# The spec's columns, exactly; `reconciliation_detail` has the census's columns besides.
RECONCILIATION_VIEW_3 = """
CREATE OR REPLACE VIEW reconciliation AS
SELECT study_uid, tier, source_instances, received_instances, destination_instances, status
FROM reconciliation_detail
"""

# Version 7: the studies with work open, from the per-study state and the reconciliation
# (one row per study): not verified (resume reads every instance of those), or some
# instance received and not confirmed one by one (a study verified by count keeps its
# instances `forwarded`), or some instance quarantined (the exceptions' small table). An
# instance received or forwarded has a receipt and no confirmation, so its study is here:
# the engine confirms no instance it did not receive, but in a rebuilt ledger's studies,
# which it then does not retrieve again.
OPEN_STUDIES_VIEW = """
CREATE OR REPLACE VIEW open_studies AS
SELECT study_uid FROM study_state WHERE received > confirmed
UNION
SELECT study_uid FROM reconciliation_detail WHERE status <> 'verified' AND status <> 'excluded'
UNION
SELECT study_uid FROM quarantines
"""

# The `instances` view for the open studies only: every fact table filtered on them before
# it is folded, so resume's reads fold the open work, not every instance.
OPEN_INSTANCES_VIEW = INSTANCES_VIEW_5.replace(
    "CREATE OR REPLACE VIEW instances AS", "CREATE OR REPLACE VIEW open_instances AS"
).replace("    FROM receipts GROUP BY",
          "    FROM receipts WHERE study_uid IN (SELECT study_uid FROM open_studies)\n"
          "    GROUP BY").replace(
    "    FROM forwards GROUP BY",
    "    FROM forwards WHERE study_uid IN (SELECT study_uid FROM open_studies)\n    GROUP BY"
).replace(
    "    FROM confirmations GROUP BY",
    "    FROM confirmations WHERE study_uid IN (SELECT study_uid FROM open_studies)\n"
    "    GROUP BY").replace(
    "    FROM quarantines GROUP BY",
    "    FROM quarantines WHERE study_uid IN (SELECT study_uid FROM open_studies)\n"
    "    GROUP BY")

# Version 10: the studies with work open, their status read from the table the writer keeps
# (runner.ledger.study_status) instead of the reconciliation's view.
OPEN_STUDIES_VIEW_10 = OPEN_STUDIES_VIEW.replace(
    "SELECT study_uid FROM reconciliation_detail WHERE status <> 'verified'",
    "SELECT study_uid FROM study_status WHERE status <> 'verified'")
