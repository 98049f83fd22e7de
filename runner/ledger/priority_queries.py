"""The priority lane's read models: the requests still open (a run serves them), the studies
of resolved requests not yet verified (a run puts them in its lane again), and each request
with its latency from received to first retrieve and to verified (status, sign-off)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from runner.ledger.queries import QuerySource, ReadOnly


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """A request received and not yet resolved, as kept (its patient ID still there)."""

    request_id: str
    received_at: datetime
    trigger: str
    event: str
    patient_id: str
    issuer: str
    due: date | None
    modality: str
    body_part: str


def open_requests(src: QuerySource) -> list[OpenRequest]:
    """The requests to serve, oldest first."""
    rows = src.query("SELECT request_id, received_at, trigger, coalesce(event, ''), patient_id,"
                     " coalesce(issuer, ''), due, coalesce(modality, ''),"
                     " coalesce(body_part, '') FROM priority_requests"
                     " WHERE resolved_at IS NULL AND patient_id IS NOT NULL"
                     " ORDER BY received_at, request_id")
    return [OpenRequest(*row) for row in rows]


def known_requests(src: QuerySource) -> set[str]:
    """Every request kept, open or resolved (a request received again is not served twice)."""
    return {str(row[0]) for row in src.query("SELECT request_id FROM priority_requests")}


def unfinished_priors(src: QuerySource) -> list[str]:
    """Studies a resolved request queued that the ledger does not show verified, in the order
    their requests came."""
    rows = src.query("""
        SELECT p.study_uid FROM priority_studies p
        JOIN priority_requests r USING (request_id)
        LEFT JOIN studies s USING (study_uid)
        WHERE p.action IN ('queued', 'added', 'under_way', 'not_in_run')
          AND coalesce(s.status, 'pending') <> 'done'
        GROUP BY p.study_uid ORDER BY min(r.received_at), p.study_uid""")
    return [str(row[0]) for row in rows]


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request and what became of it; latencies in seconds (None: not yet)."""

    request_id: str
    received_at: datetime
    trigger: str
    event: str
    patient_masked: str
    due: date | None
    outcome: str
    chosen: int
    to_move: int
    verified: int
    already_there: int
    first_retrieve_s: float | None
    verified_s: float | None

    @property
    def served(self) -> bool:
        """Every study the request moves is verified (or it moves none)."""
        return self.outcome == "resolved" and self.verified == self.to_move


_REQUESTS = """
WITH chosen AS (
    SELECT p.request_id, p.study_uid, p.action = 'verified' AS there,
           p.action IN ('queued', 'added', 'under_way', 'not_in_run') AS moves,
           (SELECT min(started_at) FROM retrieves t WHERE t.study_uid = p.study_uid
              AND t.purpose <> 'redate' AND t.started_at >= r.received_at) AS first_retrieve,
           (SELECT min(verified_at) FROM verifications v WHERE v.study_uid = p.study_uid
              AND v.ok AND v.verified_at >= r.received_at) AS verified_at
    FROM priority_studies p JOIN priority_requests r USING (request_id))
SELECT r.request_id, r.received_at, r.trigger, coalesce(r.event, ''), r.patient_masked, r.due,
       CASE WHEN r.resolved_at IS NULL THEN 'open' ELSE coalesce(r.outcome, '') END,
       count(c.study_uid), count(c.study_uid) FILTER (WHERE c.moves),
       count(c.verified_at) FILTER (WHERE c.moves), count(c.study_uid) FILTER (WHERE c.there),
       epoch(min(c.first_retrieve) FILTER (WHERE c.moves)) - epoch(r.received_at),
       CASE WHEN count(c.study_uid) FILTER (WHERE c.moves) > 0
             AND count(c.verified_at) FILTER (WHERE c.moves)
                 = count(c.study_uid) FILTER (WHERE c.moves)
            THEN epoch(max(c.verified_at) FILTER (WHERE c.moves)) - epoch(r.received_at)
       END
FROM priority_requests r LEFT JOIN chosen c USING (request_id)
GROUP BY r.request_id, r.received_at, r.trigger, r.event, r.patient_masked, r.due,
         r.resolved_at, r.outcome
ORDER BY r.received_at, r.request_id"""


def request_rows(src: QuerySource) -> list[RequestRow]:
    """Every request, oldest first, with its studies and latencies."""
    return [RequestRow(str(rid), at, str(trigger), str(event), str(masked), due, str(outcome),
                       int(chosen), int(to_move), int(verified), int(there),
                       None if first is None else float(first),
                       None if done is None else float(done))
            for rid, at, trigger, event, masked, due, outcome, chosen, to_move, verified,
            there, first, done in src.query(_REQUESTS)]


def ledger_request_rows(path: Path) -> list[RequestRow]:
    """`request_rows` of the ledger at `path`, read-only (none without one)."""
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as conn:
        return request_rows(ReadOnly(conn))


_OVERTAKEN = """
WITH firsts AS (SELECT s.study_uid, s.phase_index::BIGINT * 1000000000 + s.order_index AS k,
                       min(r.started_at) AS first_at,
                       s.study_uid IN (SELECT study_uid FROM priority_studies
                                       WHERE action IN ('queued', 'added')) AS is_prior
                FROM studies s JOIN retrieves r USING (study_uid)
                WHERE r.purpose <> 'redate' GROUP BY ALL),
     ranked AS (SELECT *, row_number() OVER (ORDER BY first_at) AS position FROM firsts)
SELECT list(position ORDER BY position) FILTER (WHERE is_prior),
       count(*) FILTER (WHERE NOT is_prior
                        AND first_at > (SELECT min(first_at) FROM ranked WHERE is_prior)
                        AND k < (SELECT max(k) FROM ranked WHERE is_prior))
FROM ranked"""


def overtaken(path: Path) -> tuple[list[int], int]:
    """Where the studies the priority lane moved ahead came in the run (1-based, by first
    retrieve), and how many studies the plan put before one of them were retrieved after
    the first of them: the ledger at `path`, read-only."""
    if not path.exists():
        return [], 0
    with duckdb.connect(str(path), read_only=True) as conn:
        positions, count = ReadOnly(conn).query(_OVERTAKEN)[0]
    return [int(p) for p in positions or []], int(count)


@dataclass(frozen=True, slots=True)
class PrioritySummary:
    """The lane in numbers, for `status` and the sign-off report."""

    requests: int
    by_trigger: tuple[tuple[str, int], ...]
    open: int
    failed: int
    served: int
    chosen: int
    moved: int
    verified: int
    already_there: int
    first_retrieve: tuple[float, float, float] | None  # p50, p90, max in seconds
    to_verified: tuple[float, float, float] | None


def percentiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """p50, p90 and max (nearest rank), or None without values."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = math.ceil(len(ordered) * p / 100) - 1
        return ordered[min(len(ordered) - 1, max(0, index))]

    return rank(50), rank(90), ordered[-1]


def priority_summary(rows: Sequence[RequestRow]) -> PrioritySummary:
    """The summary of `request_rows`."""
    triggers: dict[str, int] = {}
    for row in rows:
        triggers[row.trigger] = triggers.get(row.trigger, 0) + 1
    return PrioritySummary(
        requests=len(rows), by_trigger=tuple(sorted(triggers.items())),
        open=sum(1 for r in rows if r.outcome == "open"),
        failed=sum(1 for r in rows if r.outcome not in ("open", "resolved")),
        served=sum(1 for r in rows if r.served),
        chosen=sum(r.chosen for r in rows), moved=sum(r.to_move for r in rows),
        verified=sum(r.verified for r in rows),
        already_there=sum(r.already_there for r in rows),
        first_retrieve=percentiles([r.first_retrieve_s for r in rows
                                    if r.first_retrieve_s is not None]),
        to_verified=percentiles([r.verified_s for r in rows if r.verified_s is not None]))
