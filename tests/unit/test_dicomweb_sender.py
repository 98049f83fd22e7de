"""The STOW-RS sender against a scripted service (httpx's MockTransport): a request per
study, attempts in submission order, 413 split in halves, 429/503 sent again, 401 stops
the run, and pending instances sent as soon as they make a request's size."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pytest

from runner.destinations.web import Credentials, WebService
from runner.execute.sending.dicomweb import WebLink, WebSender
from runner.execute.sending.prepare import Job
from runner.execute.sending.seam import ForwardItem
from runner.morph import compile_rules
from runner.sim.generate import make_study, synthetic_archive, to_bytes

Answer = Callable[[httpx.Request], httpx.Response]


def _items(tmp_path: Path, studies: int, instances: int) -> list[ForwardItem]:
    items = []
    for spec in synthetic_archive("send", studies, date(2015, 1, 1), date(2016, 1, 1),
                                  series_count=1, instances_per_series=instances):
        for ds in make_study(spec):
            path = tmp_path / f"{len(items)}.dcm"
            path.write_bytes(to_bytes(ds))
            items.append(ForwardItem(str(ds.SOPInstanceUID), str(ds.StudyInstanceUID),
                                     str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID),
                                     path, path.name))
    return items


def _parts(request: httpx.Request) -> int:
    return request.read().count(b"Content-Type: application/dicom\r\n")


class Service:
    """Answers POSTs with `answer`, recording how many parts each carried."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.posts: list[int] = []
        self.fatal: list[str] = []

    def sender(self, **limits: int) -> WebSender:
        service = WebService("http://vna/dicom-web", **limits)
        link = WebLink(service, Credentials(), self.fatal.append, "VNA (http://vna)")
        sender = WebSender(link, Job(compile_rules([])))
        sender.client = httpx.Client(transport=httpx.MockTransport(self._serve))
        return sender

    def _serve(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(_parts(request))
        return self.answer(request)


def _ok(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


def test_instances_of_each_study_go_in_one_request_and_answer_in_submission_order(
        tmp_path: Path) -> None:
    items = _items(tmp_path, 2, 3)
    service = Service(_ok)
    sender = service.sender()
    order = [items[0], items[3], items[1], items[4], items[2], items[5]]
    for item in order:
        sender.submit(item)
    attempts = [sender.collect() for _ in order]
    assert service.posts == [3, 3]
    assert all(a.ok for a in attempts)


def test_a_request_too_large_is_split_in_halves_until_it_is_taken(tmp_path: Path) -> None:
    items = _items(tmp_path, 1, 4)
    service = Service(lambda r: httpx.Response(413 if _parts(r) > 1 else 200))
    sender = service.sender()
    for item in items:
        sender.submit(item)
    assert all(sender.collect().ok for _ in items)
    assert service.posts == [4, 2, 1, 1, 2, 1, 1]


def test_busy_answers_are_sent_again_after_retry_after(tmp_path: Path) -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "0"}),
                    httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)])
    service = Service(lambda _r: next(answers))
    assert service.sender().send(_items(tmp_path, 1, 1)[0]).ok
    assert service.posts == [1, 1, 1]


def test_refused_credentials_stop_the_run_and_the_instances_stay_to_send_again(
        tmp_path: Path) -> None:
    service = Service(lambda _r: httpx.Response(401))
    attempt = service.sender().send(_items(tmp_path, 1, 1)[0])
    assert not attempt.ok and attempt.retry and attempt.status == 401
    assert service.fatal == ["destination VNA (http://vna) refused the credentials: HTTP 401 "
                             "Unauthorized; check destination.dicomweb.auth"]


@pytest.mark.parametrize("limit", [1, 2])
def test_pending_instances_go_as_soon_as_they_make_a_requests_size(
        tmp_path: Path, limit: int) -> None:
    items = _items(tmp_path, 1, 4)
    service = Service(_ok)
    sender = service.sender(max_request_bytes=items[0].path.stat().st_size * limit)
    for item in items:
        sender.submit(item)
    assert sum(service.posts) == 4 and max(service.posts) == limit  # sent while submitting
    assert all(sender.collect().ok for _ in items)
