"""Ctrl-C during a run sets a flag the dispatcher looks at; it raises KeyboardInterrupt only
the second time, so the first never lands inside a lock's wait or a half-done hand-over."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from runner.execute.wiring import _ctrl_c_sets


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT as an interactive Python has it (a shell's background job, as CI runs the
    suite, inherits it ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_raises")
def test_the_first_ctrl_c_sets_the_flag_and_the_second_raises() -> None:
    interrupted = threading.Event()
    with _ctrl_c_sets(interrupted):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs in the main thread between bytecodes
        assert interrupted.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored() -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interrupted = threading.Event()
        with _ctrl_c_sets(interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        assert not interrupted.is_set()
    finally:
        signal.signal(signal.SIGINT, before)


def test_outside_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def run() -> None:
        with _ctrl_c_sets(threading.Event()):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]
