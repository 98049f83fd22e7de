"""The capability matrix: each SOP class found, against what the destination accepts."""

from __future__ import annotations

from runner.plan.capabilities import capability_matrix, matrix_json

ELE, ILE, RLE, JPEG = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.5",
                       "1.2.840.10008.1.2.4.50")
CT, MR, CSA = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.3.12.2.1107.5.9.1"
PROBED = (ELE, ILE, RLE, JPEG)


def test_as_is_partly_and_refused_classes_most_studies_first() -> None:
    rows = capability_matrix({CT: 5, MR: 9, CSA: 1},
                             {CT: PROBED, MR: (ELE, ILE), CSA: ()}, PROBED)
    assert [(r.sop_class, r.verdict) for r in rows] == [
        (MR, "partly"), (CT, "as is"), (CSA, "refused")]
    mr = rows[0].describe(frozenset({ELE, ILE, RLE}), frozenset({ELE, ILE, RLE}))
    assert "accepted in 2 of 4 syntaxes" in mr
    assert "held in RLE Lossless: transcoded losslessly" in mr
    assert "held in JPEG Baseline (Process 1): exceptions" in mr
    assert matrix_json(rows)[2] == {
        "sop_class": CSA, "name": f"{CSA} (private)", "private": True, "studies": 1,
        "verdict": "refused", "accepted_syntaxes": [], "refused_syntaxes": list(PROBED)}


def test_a_destination_taking_only_a_lossless_compression_gets_transcodes_not_exceptions() -> None:
    [row] = capability_matrix({CT: 3}, {CT: (RLE,)}, PROBED)
    assert row.verdict == "partly, no uncompressed syntax accepted"
    line = row.describe(frozenset({ELE, ILE, RLE}), frozenset({ELE, ILE, RLE}))
    assert "held in Explicit VR Little Endian, Implicit VR Little Endian: transcoded" in line
    assert "held in JPEG Baseline (Process 1): exceptions" in line
    cannot_write = row.describe(frozenset({ELE, ILE, RLE}), frozenset({ELE, ILE}))
    assert "transcoded" not in cannot_write
    assert "held in Explicit VR Little Endian, Implicit VR Little Endian, JPEG Baseline" in \
        cannot_write
