"""A forwarding worker's lookahead (sending.pool._Lookahead): the next item is prepared while
a store waits, only if it has already come; items come out in order; None ends."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from runner.execute.sending.pool import _Lookahead
from runner.execute.sending.prepare import Job
from runner.execute.sending.seam import ForwardItem
from runner.morph import compile_rules
from runner.profile.morphing import MorphRule

# with a rule, preparing reads the file: a missing one is a refusal that names it
JOB = Job(compile_rules([MorphRule.model_validate({"set": {"InstitutionName": "X"}})]))


def item(number: int, tmp_path: Path) -> ForwardItem:
    path = tmp_path / f"{number}.dcm"  # never written: preparing it says it cannot be read
    return ForwardItem(f"1.2.3.{number}", "1.2.3", "1.2.840.10008.5.1.4.1.1.2",
                       "1.2.840.10008.1.2.1", path, f"{number:032x}.dcm")


def test_fill_prepares_nothing_and_never_waits_while_no_item_has_come(tmp_path: Path) -> None:
    ours, theirs = multiprocessing.Pipe()
    ahead = _Lookahead(theirs, JOB)
    filled = threading.Thread(target=ahead.fill)
    filled.start()
    filled.join(timeout=5)

    assert not filled.is_alive() and ahead.ready is None
    ours.close()


def test_fill_prepares_the_item_that_came_and_take_gives_it_then_the_next(
        tmp_path: Path) -> None:
    ours, theirs = multiprocessing.Pipe()
    ahead = _Lookahead(theirs, JOB)
    ours.send(item(1, tmp_path))
    ours.send(item(2, tmp_path))
    assert theirs.poll(5)

    ahead.fill()
    ahead.fill()  # one ahead at most: the second item stays in the pipe
    assert ahead.ready is not None and ahead.ready.refusal is not None
    assert "1.dcm" in ahead.ready.refusal.detail
    first, second = ahead.take(), ahead.take()

    assert first is not None and first.refusal is not None and "1.dcm" in first.refusal.detail
    assert second is not None and second.refusal is not None
    assert "2.dcm" in second.refusal.detail
    ours.send(None)
    assert ahead.take() is None and ahead.ended


def test_a_gone_main_process_ends_the_loop(tmp_path: Path) -> None:
    ours, theirs = multiprocessing.Pipe()
    ahead = _Lookahead(theirs, JOB)
    ours.close()

    ahead.fill()
    assert ahead.take() is None and ahead.ended


def test_a_pipe_that_cannot_be_polled_ends_the_loop_without_failing_the_store() -> None:
    ours, theirs = multiprocessing.Pipe()
    ahead = _Lookahead(theirs, JOB)
    theirs.close()

    ahead.fill()  # called while a store waits for its answer: must not raise

    assert ahead.ended and ahead.take() is None
    ours.close()
