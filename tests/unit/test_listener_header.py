"""The listener reads an instance's identifying UIDs from the first bytes received, never a
value cut short where the first fragment (or the prefix it reads) ends."""

from __future__ import annotations

import warnings
from datetime import date

import pytest

import runner.dicom.listener as listener
from runner.dicom.part10 import read_meta
from runner.sim.generate import ct_512, make_study, synthetic_archive, to_bytes


@pytest.fixture(scope="module")
def dataset_and_syntax() -> tuple[bytes, str]:
    [spec] = [ct_512(s) for s in synthetic_archive("hdr", 1, date(2015, 1, 1), date(2016, 1, 1),
                                                   modalities=("CT",), instances_per_series=1)]
    raw = to_bytes(next(iter(make_study(spec))))
    meta = read_meta(raw)
    return raw[meta.dataset_offset:], meta.transfer_syntax


@pytest.mark.parametrize("prefix", [1, 100, 555, 1000, 16384])
def test_header_from_the_first_fragment_equals_the_whole_parse_wherever_it_is_cut(
    dataset_and_syntax: tuple[bytes, str], prefix: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, syntax = dataset_and_syntax
    whole = listener.parse_dataset_header(dataset, syntax)
    monkeypatch.setattr(listener, "_HEADER_PREFIX", prefix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cut SpecificCharacterSet warns before the retry
        for cut in range(1, 2000, 3):
            fragments = [memoryview(dataset[:cut]), memoryview(dataset[cut:])]
            assert listener._header_of(fragments, syntax) == whole, cut


def test_a_dataset_without_the_identifying_uids_is_still_refused(
    dataset_and_syntax: tuple[bytes, str],
) -> None:
    _dataset, syntax = dataset_and_syntax
    with pytest.raises(listener.HeaderError):
        listener._header_of([memoryview(b"\x08\x00\x16\x00UI\x02\x00")], syntax)
