"""HL7 v2 messages to priority requests, and their acknowledgements (python-hl7 parses).

Read: orders (ORM^O01, OMI^O23), appointments (SIU^S12 new, SIU^S14 modified) and
admissions (ADT^A01 admit, A04 register, A05 pre-admit). The patient is the first PID-3
repetition with an ID, its issuer the assigning authority (PID-3.4, first component). The
date the priors are needed by, the first of these that holds one:

- orders: TQ1-7 (start), ORC-7.4 (quantity/timing start), OBR-27.4, OBR-36 (scheduled),
  OBR-7 (observation);
- appointments: SCH-11.4 (appointment start), AIS-4 (service start);
- admissions: PV2-8 (expected admission) for A05, PV1-44 (admission), EVN-6, EVN-2.

No date: the request is served as soon as possible. The order's modality is OBR-24
(diagnostic service section) or IPC-5 (OMI), its body part OBR-15.4 (specimen source's body
site). Answers (MSA-1): AA kept; AE (application error: understood but not usable: no
patient, a date that is not a date, a patient ID a query would read as a pattern); AR
(application reject: not a message this listener takes, or not HL7 at all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import hl7

from runner.plan.priority import PriorityRequest, Trigger

SUPPORTED = {("ORM", "O01"), ("OMI", "O23"), ("SIU", "S12"), ("SIU", "S14"),
             ("ADT", "A01"), ("ADT", "A04"), ("ADT", "A05")}

_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})")


class MessageRefused(ValueError):
    """A message answered AE or AR (`code`), with the reason for the sender."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def normalised(text: str) -> str:
    """Segments separated by CR, as HL7 says (interface engines also send LF or CRLF)."""
    return "\r".join(line for line in re.split(r"\r\n|\n|\r", text.strip()) if line)


def request_of(text: str, received_at: datetime) -> PriorityRequest:
    """The request a message makes; MessageRefused (AE or AR) if it makes none."""
    message = _parse(text)
    kind, trigger = _value(message, "MSH", 9, 1, 1), _value(message, "MSH", 9, 1, 2)
    event = f"{kind}^{trigger}"
    if (kind, trigger) not in SUPPORTED:
        raise MessageRefused("AR", f"{event} is not a message this listener takes (orders "
                                   "ORM^O01/OMI^O23, appointments SIU^S12/S14, admissions "
                                   "ADT^A01/A04/A05)")
    patient_id, issuer = _patient(message)
    due = _due(message, kind, trigger)
    modality = _value(message, "OBR", 24) or _value(message, "IPC", 5)
    body_part = _value(message, "OBR", 15, 1, 4)
    control_id = _value(message, "MSH", 10)
    sender = f"{_value(message, 'MSH', 3)}/{_value(message, 'MSH', 4)}"
    return PriorityRequest(Trigger.HL7, patient_id, received_at, issuer, due,
                           modality.upper(), body_part.upper(),
                           reference=f"{sender}/{control_id}" if control_id else "",
                           event=event)


def _parse(text: str) -> Any:
    body = normalised(text)
    if not body.startswith("MSH") or len(body) < 8:
        raise MessageRefused("AR", "not an HL7 v2 message (it must begin with an MSH segment)")
    try:
        return hl7.parse(body)
    except Exception as exc:  # the library raises what its parsing meets
        raise MessageRefused("AR", f"the message cannot be parsed: {exc}") from None


def _value(message: Any, segment: str, field: int, repeat: int = 1,
           component: int = 1) -> str:
    """One component of the first such segment ("" when absent or shorter)."""
    try:
        value = message.extract_field(segment, 1, field, repeat, component)
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""  # no such segment, or the field stops before that component
    return str(value).strip()


def _patient(message: Any) -> tuple[str, str]:
    """The first PID-3 repetition with an ID, and its assigning authority (the message's
    own encoding characters, MSH-2, separate the components)."""
    try:
        repetitions = message.segment("PID")(3)
    except (KeyError, IndexError):
        raise MessageRefused("AE", "no PID segment: the patient is not named") from None
    component, subcomponent = message.separators[3], message.separators[4]
    for repetition in repetitions if not isinstance(repetitions, str) else [repetitions]:
        parts = str(repetition).split(component)
        patient_id = parts[0].strip()
        if patient_id:
            authority = parts[3] if len(parts) > 3 else ""
            return patient_id, authority.split(subcomponent)[0].strip()
    raise MessageRefused("AE", "PID-3 holds no patient identifier")


@dataclass(frozen=True, slots=True)
class _Where:
    segment: str
    field: int
    component: int = 1


_ORDER_DATES = (_Where("TQ1", 7), _Where("ORC", 7, 4), _Where("OBR", 27, 4), _Where("OBR", 36),
                _Where("OBR", 7))
_APPOINTMENT_DATES = (_Where("SCH", 11, 4), _Where("AIS", 4))
_ADMISSION_DATES = (_Where("PV1", 44), _Where("EVN", 6), _Where("EVN", 2))


def _due(message: Any, kind: str, trigger: str) -> date | None:
    places: tuple[_Where, ...]
    if kind in ("ORM", "OMI"):
        places = _ORDER_DATES
    elif kind == "SIU":
        places = _APPOINTMENT_DATES
    else:
        places = ((_Where("PV2", 8),) if trigger == "A05" else ()) + _ADMISSION_DATES
    for where in places:
        text = _value(message, where.segment, where.field, 1, where.component)
        if text:
            return _date(text, where)
    return None


def _date(text: str, where: _Where) -> date:
    match = _DATE.match(text)
    try:
        if match is None:
            raise ValueError(text)
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        place = f"{where.segment}-{where.field}" + (f".{where.component}"
                                                     if where.component > 1 else "")
        raise MessageRefused("AE", f"{place} is not an HL7 date/time (YYYYMMDD...)") from None


_ERRORS = {"AE": "207^Application internal error^HL70357",
           "AR": "200^Unsupported message type^HL70357"}


def ack(text: str, code: str, reason: str = "") -> str:
    """The acknowledgement of `text` (MSA-1 `code`, MSA-3 and ERR the reason), CR-separated;
    one built from scratch when the message has no usable MSH."""
    try:
        message = hl7.parse(normalised(text))
        answer = message.create_ack(code)
        if reason:
            answer.segment("MSA").assign_field(_escaped(reason), 3)
        built = str(answer).rstrip("\r")
    except Exception:  # a message too broken to answer in kind
        stamp = datetime.now().strftime("%Y%m%d%H%M%S")
        built = (f"MSH|^~\\&|PACSMIG||||{stamp}||ACK|{stamp}|P|2.5\r"
                 f"MSA|{code}||{_escaped(reason)}")
    if code != "AA":
        built += f"\rERR|||{_ERRORS.get(code, _ERRORS['AE'])}|E||||{_escaped(reason)}"
    return built + "\r"


def _escaped(text: str) -> str:
    """Text safe inside a field (HL7 escape sequences for the delimiters)."""
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("&", "\\T\\").replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))
