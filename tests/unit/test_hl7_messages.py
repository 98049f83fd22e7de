"""HL7 v2 messages as an interface engine sends them, read into priority requests, and the
acknowledgement each gets (python-hl7 parses)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import hl7
import pytest

from runner.execute.priority.hl7_messages import MessageRefused, ack, request_of
from runner.plan.priority import Trigger

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
NOW = datetime(2026, 12, 5, 10, 15, tzinfo=UTC)


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_an_order_names_the_first_patient_id_its_issuer_date_modality_and_body_part() -> None:
    request = request_of(sample("orm_o01.hl7"), NOW)
    assert (request.trigger, request.event) == (Trigger.HL7, "ORM^O01")
    assert (request.patient_id, request.issuer) == ("PAT-100", "HOSPITAL")
    assert (request.due, request.modality, request.body_part) == (
        date(2026, 12, 7), "CT", "CHEST")
    assert request.reference == "EPIC/RADIOLOGY/MSG00001"


def test_an_omi_with_line_feeds_takes_its_date_from_tq1_and_modality_from_ipc() -> None:
    request = request_of(sample("omi_o23.hl7"), NOW)
    assert (request.patient_id, request.issuer, request.due, request.modality) == (
        "PAT-200", "HOSPITAL", date(2026, 12, 8), "MR")


def test_an_appointment_takes_the_start_of_its_timing() -> None:
    request = request_of(sample("siu_s12.hl7"), NOW)
    assert (request.event, request.patient_id, request.due) == (
        "SIU^S12", "PAT-300", date(2026, 12, 9))


def test_a_pre_admission_takes_the_expected_admission_date() -> None:
    request = request_of(sample("adt_a05.hl7"), NOW)
    assert (request.event, request.due) == ("ADT^A05", date(2026, 12, 11))


def test_an_order_without_a_date_is_served_as_soon_as_possible() -> None:
    text = "MSH|^~\\&|A|B|C|D|20261205||ORM^O01|X1|P|2.3\rPID|1||P9\rORC|NW|O9\r"
    assert request_of(text, NOW).due is None


def test_a_message_this_listener_does_not_take_is_rejected() -> None:
    text = "MSH|^~\\&|LAB|H|C|D|20261205||ORU^R01|X2|P|2.3\rPID|1||P9\r"
    with pytest.raises(MessageRefused) as refused:
        request_of(text, NOW)
    assert refused.value.code == "AR" and "ORU^R01" in refused.value.reason


@pytest.mark.parametrize("text", ["", "hello", "PID|1||P9\r", "MSH|"])
def test_text_that_is_not_hl7_is_rejected(text: str) -> None:
    with pytest.raises(MessageRefused) as refused:
        request_of(text, NOW)
    assert refused.value.code == "AR"


@pytest.mark.parametrize(("text", "said"), [
    ("MSH|^~\\&|A|B|C|D|20261205||ORM^O01|X3|P|2.3\rORC|NW|O1\r", "no PID"),
    ("MSH|^~\\&|A|B|C|D|20261205||ORM^O01|X4|P|2.3\rPID|1||^^^H^MR\r", "PID-3"),
    ("MSH|^~\\&|A|B|C|D|20261205||ORM^O01|X5|P|2.3\rPID|1||P9\rTQ1|1||||||tomorrow\r",
     "TQ1-7"),
])
def test_a_message_that_cannot_be_used_is_an_application_error(text: str, said: str) -> None:
    with pytest.raises(MessageRefused) as refused:
        request_of(text, NOW)
    assert refused.value.code == "AE" and said in refused.value.reason


def test_the_ack_answers_the_message_control_id_with_the_code_and_reason() -> None:
    answer = hl7.parse(ack(sample("orm_o01.hl7"), "AE", "no patient | here"))
    assert str(answer.segment("MSH")(9)) == "ACK^O01^ACK"
    assert (str(answer.segment("MSA")(1)), str(answer.segment("MSA")(2))) == ("AE", "MSG00001")
    assert str(answer.segment("MSA")(3)) == "no patient \\F\\ here"  # escaped
    assert str(answer.segment("MSH")(5)) == "EPIC"  # back to the sender


def test_garbage_still_gets_an_ack_it_can_read() -> None:
    answer = hl7.parse(ack("not hl7", "AR", "not an HL7 v2 message"))
    assert str(answer.segment("MSA")(1)) == "AR"


def test_the_same_message_resent_is_the_same_request() -> None:
    first = request_of(sample("orm_o01.hl7"), NOW)
    again = request_of(sample("orm_o01.hl7"), datetime(2026, 12, 5, 11, tzinfo=UTC))
    assert first.request_id == again.request_id


def test_a_message_with_its_own_encoding_characters_is_read_with_them() -> None:
    text = ("MSH|#~\\&|RIS|H|C|D|20261205||ORM#O01|X9|P|2.3\r"
            "PID|1||PAT-900###HOSPITAL&1.2.3&ISO#MR\rORC|NW|O9|||SC||###20261210\r")
    request = request_of(text, NOW)
    assert (request.event, request.patient_id, request.issuer, request.due) == (
        "ORM^O01", "PAT-900", "HOSPITAL", date(2026, 12, 10))
