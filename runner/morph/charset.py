"""Character sets: text values decoded and encoded strictly as the dataset declares them.

pydicom, left to itself, decodes undecodable bytes with replacement characters and encodes
unencodable text as '?'; the engine never does either. Bytes that do not decode under the
declared Specific Character Set are read with the configured fallback (`latin1`, `utf8`) or
make the instance fail (`keep`). A value that cannot be encoded in the declared character
set makes the instance fail: the engine does not upgrade the character set to ISO_IR 192,
because that would re-encode every text element of the instance, not just the touched ones.
The one exception is an instance that declares no character set (or ISO_IR 6): with a
fallback configured, the fallback's character set is declared when a touched value needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

from pydicom.charset import decode_bytes, python_encoding

CharsetFallback = Literal["keep", "latin1", "utf8"]
FALLBACKS: tuple[CharsetFallback, ...] = get_args(CharsetFallback)
FALLBACK_TERMS: dict[CharsetFallback, str] = {"latin1": "ISO_IR 100", "utf8": "ISO_IR 192"}
_FALLBACK_CODECS: dict[CharsetFallback, str] = {"latin1": "latin_1", "utf8": "utf_8"}
_DEFAULT_TERMS = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})
_ESC = b"\x1b"
_DELIMITERS = {0x5C, 0x0D, 0x0A, 0x09, 0x0C, 0x5E, 0x3D}


@dataclass(frozen=True)
class Codec:
    """The character set a dataset declares, as strict Python codecs."""

    terms: tuple[str, ...]
    encodings: tuple[str, ...] | None  # None: a term pydicom does not know

    @property
    def name(self) -> str:
        """The declaration for people."""
        if not self.declares_beyond_ascii:
            return "the default repertoire (ASCII)"
        return "\\".join(self.terms)

    @property
    def declares_beyond_ascii(self) -> bool:
        """False when the dataset declares no character set, or only ISO_IR 6."""
        return any(term not in _DEFAULT_TERMS for term in self.terms)

    def decode(self, data: bytes) -> str | None:
        """The text of `data`, or None when the bytes are not valid in this character set."""
        if self.encodings is None:
            return data.decode("ascii") if data.isascii() and _ESC not in data else None
        if len(self.encodings) > 1 and _ESC in data:
            return _decode_extended(data, self.encodings)
        try:
            return data.decode(self.encodings[0])
        except UnicodeDecodeError:
            return None

    def can_encode(self, text: str) -> bool:
        """Whether `text` can be written in this character set without loss."""
        if text.isascii():
            return True
        if self.encodings is None:
            return False
        if len(self.encodings) == 1:
            return _encodes(text, self.encodings[0])
        return all(any(_encodes(ch, enc) for enc in self.encodings) for ch in text)


def fallback_decode(fallback: CharsetFallback, data: bytes) -> str | None:
    """`data` read with the fallback character set, or None (`keep`, or not valid UTF-8)."""
    if fallback == "keep":
        return None
    try:
        return data.decode(_FALLBACK_CODECS[fallback])
    except UnicodeDecodeError:
        return None


@lru_cache(maxsize=256)
def codec_for(terms: tuple[str, ...]) -> Codec:
    """The codec for a Specific Character Set value (its values, stripped)."""
    if not terms:
        return Codec((), ("ascii",))
    encodings: list[str] = []
    for term in terms:
        if term not in python_encoding:
            return Codec(terms, None)
        encodings.append("ascii" if term in _DEFAULT_TERMS else python_encoding[term])
    return Codec(terms, tuple(encodings))


def fallback_codec(fallback: CharsetFallback) -> Codec:
    """The codec of the character set a fallback declares."""
    return codec_for((FALLBACK_TERMS[fallback],))


def _decode_extended(data: bytes, encodings: tuple[str, ...]) -> str | None:
    """ISO 2022 code extensions, through pydicom; replacement characters mean failure."""
    pydicom_names = ["iso8859" if enc == "ascii" else enc for enc in encodings]
    text = decode_bytes(data, pydicom_names, _DELIMITERS)
    return None if "\ufffd" in text else text


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True
