"""Writing a batch of facts: one bulk statement per kind of fact, kind by kind in the order the
facts are declared (runner.ledger.events), which respects what depends on what (a retrieve is
started before it finishes, a study planned before its status changes). How each kind is
written is its own declaration's `write`; the tools it uses are runner.ledger.tables. Then
the per-study state is brought up to date with the batch's instances (runner.ledger.
study_state), and the status of the studies the batch touched (runner.ledger.study_status),
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.ledger.events import Fact, declared
from runner.ledger.study_state import count_instances
from runner.ledger.study_status import refresh

if TYPE_CHECKING:
    from runner.ledger.tables import Conn


def write_batch(conn: Conn, facts: Sequence[Fact], upsert: bool) -> None:
    """Write `facts` on `conn` (inside the caller's transaction), fast or upsert path; the
    instances counted once each, their keys looked up first on the upsert path."""
    for kind in declared():
        batch = [fact for fact in facts if isinstance(fact, kind)]
        if batch:
            kind.write(conn, batch, upsert)
    count_instances(conn, facts, look_up=upsert)
    refresh(conn, facts)
