"""The DICOM data dictionary as the runner uses it: keywords or tags, VRs, the identity tags;
and attribute values as DICOM strings, for comparisons across datasets and peers.

A leaf module (pydicom only), shared by the profile (rule keys), morph, the DICOM layer and
the run: no socket here, so the pure core may import it, and no package has to import
another for it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

_TAG_FORMS = (
    re.compile(r"^\(\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)$"),
    re.compile(r"^([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})$"),
)

# Attributes whose change breaks the identity of what is migrated.
IDENTITY_TAGS = frozenset({0x0020000D, 0x0020000E, 0x00080018})


def parse_tag_number(text: str) -> int | None:
    """`(0008,0080)`, `0008,0080` or `00080080` as an integer tag, else None."""
    for form in _TAG_FORMS:
        m = form.match(text.strip())
        if m:
            return int(m.group(1) + m.group(2), 16)
    return None


@lru_cache(maxsize=4096)
def resolve_tag(name: str) -> int:
    """The tag for a keyword or tag string; ValueError with a helpful message if unknown.

    Private tags (odd group) given by number are accepted: they cannot be in the dictionary.
    """
    number = parse_tag_number(name)
    if number is not None:
        if number >> 16 & 1 or dictionary_has_tag(number):
            return number
        raise ValueError(f"tag {format_tag(number)} is not in the DICOM dictionary")
    tag = tag_for_keyword(name.strip())
    if tag is None:
        raise ValueError(f"unknown DICOM keyword '{name}'{_suggestion(name)}")
    return int(tag)


def format_tag(tag: int) -> str:
    """An integer tag as `(GGGG,EEEE)`."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def describe_tag(tag: int) -> str:
    """A tag for people: its keyword where it has one, else `(GGGG,EEEE)`."""
    keyword = keyword_for_tag(tag) if dictionary_has_tag(tag) else ""
    return keyword or format_tag(tag)


# VRs whose explicit-VR encoding has two reserved bytes and a 4-byte length (PS3.5 7.1.2),
# as they appear in the bytes: read by every header walk (file meta, spool, raw scan).
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                      b"UR", b"UT", b"UV"})


def vr_of(tag: int) -> str | None:
    """The dictionary VR of a tag, or None for private or unknown tags."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def value_text(ds: Dataset, key: BaseTag | int) -> str:
    """A value in DICOM string form: "" when absent or empty, multi-values joined by "\\"."""
    element = ds.get(key)
    if element is None or element.value is None or element.value == "":
        return ""
    value = element.value
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(item) for item in value)
    return str(value)


def _suggestion(name: str) -> str:
    from difflib import get_close_matches

    from pydicom.datadict import keyword_dict

    close = get_close_matches(name, keyword_dict.keys(), n=1, cutoff=0.8)
    return f" (did you mean '{close[0]}'?)" if close else ""
