"""Attribute values as DICOM strings, for comparisons across datasets and peers."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag


def value_text(ds: Dataset, key: BaseTag | int) -> str:
    """A value in DICOM string form: "" when absent or empty, multi-values joined by "\\"."""
    element = ds.get(key)
    if element is None or element.value is None or element.value == "":
        return ""
    value = element.value
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(item) for item in value)
    return str(value)
