"""The SOP class UIDs the runner uses, typed (pynetdicom makes its names at run time)."""

from __future__ import annotations

from pydicom.uid import UID

VERIFICATION = UID("1.2.840.10008.1.1")
PATIENT_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.1.1")
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
MODALITY_WORKLIST_FIND = UID("1.2.840.10008.5.1.4.31")
PATIENT_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.1.2")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
