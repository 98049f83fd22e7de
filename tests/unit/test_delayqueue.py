"""The forwarder's queue (runner.execute.delayqueue): readiness order, take_ready, close."""

from __future__ import annotations

from runner.execute.delayqueue import DelayQueue


def test_take_ready_gives_a_ready_item_and_counts_it_as_busy() -> None:
    queue: DelayQueue[str] = DelayQueue()
    queue.put("now")

    assert queue.take_ready() == "now"
    assert not queue.idle() and len(queue) == 1
    queue.done()
    assert queue.idle()


def test_take_ready_does_not_wait_for_an_item_that_is_not_ready() -> None:
    queue: DelayQueue[str] = DelayQueue()
    assert queue.take_ready() is None
    queue.put("later", delay=60.0)

    assert queue.take_ready() is None
    assert len(queue) == 1 and not queue.idle()


def test_take_ready_gives_nothing_once_closed() -> None:
    queue: DelayQueue[str] = DelayQueue()
    queue.put("dropped")
    queue.close()

    assert queue.take_ready() is None
    assert queue.get() is None


def test_items_come_out_in_order_of_readiness() -> None:
    queue: DelayQueue[str] = DelayQueue()
    queue.put("second", delay=0.02)
    queue.put("first")

    assert [queue.get(), queue.get()] == ["first", "second"]
