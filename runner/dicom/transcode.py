"""Lossless transcoding, only for a destination that refuses an instance's transfer syntax.

An instance is forwarded in the transfer syntax it was received in whenever the destination
accepts it. When the destination accepts the SOP class only in other syntaxes (association
negotiation says which), `target_syntax` picks one that carries the same data set without
loss: an uncompressed one (Explicit VR Little Endian first), or deflated, else a lossless
compression this runner can write (RLE Lossless, JPEG-LS lossless, JPEG 2000 lossless, for
a destination that takes only compressed data). `transcode` re-encodes a data set read by
pydicom for it: an uncompressed or deflated source needs only new element encoding; a
compressed one is decoded by pydicom's pixel data plugins (RLE by pydicom, JPEG lossless /
JPEG-LS / JPEG 2000 / HTJ2K by pylibjpeg and pyjpegls), keeping the SOP Instance UID
(pydicom's `decompress` and `compress` make a new one unless told not to) and every other
attribute. Between big and little endian, the values pydicom keeps as bytes but which are
words (Pixel Data in OW, overlays, OF/OL/OD/OV) have their bytes swapped. A compressed
target is encoded from the decoded pixels (the Photometric Interpretation stays), then
decoded again and compared with them: any difference, or an image the encoder cannot
take, is a `TranscodeError`.

Never lossy: a source encoded lossily (JPEG baseline/extended, JPEG-LS near-lossless,
JPEG 2000 and HTJ2K lossy, video, JPEG XL) is not decoded, because decoders do not agree to
the bit on lossy codestreams and the destination would hold pixels the source never held:
`TranscodeError` says why, and the instance is an exception, not a silent change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

# Targets, preferred first: each carries any data set unchanged (in native pixel data).
LOSSLESS_TARGETS: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)

# Lossless compressions this runner can write, preferred after those: RLE (pydicom's own
# encoder, fast), JPEG-LS lossless (pyjpegls), JPEG 2000 lossless (pylibjpeg-openjpeg).
LOSSLESS_ENCODINGS: tuple[str, ...] = (RLELossless, JPEGLSLossless, JPEG2000Lossless)
WRITABLE_ENCODINGS: tuple[str, ...] = tuple(
    s for s in LOSSLESS_ENCODINGS if get_encoder(UID(s)).is_available)

# Compressed syntaxes whose codestream is lossless: decoding them gives exactly the pixels
# that were encoded (RLE, JPEG process 14, JPEG-LS lossless, JPEG 2000 and HTJ2K lossless).
LOSSLESS_COMPRESSED: frozenset[str] = frozenset({
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
})


class TranscodeError(ValueError):
    """An instance that cannot be sent losslessly in any syntax the destination accepts."""


@dataclass(frozen=True, slots=True)
class Transcode:
    """One instance sent in another transfer syntax than it was received in, and why."""

    source_syntax: str
    sent_syntax: str
    reason: str


def target_syntax(source: str, accepted: Sequence[str]) -> Transcode:
    """The syntax to send an instance received in `source` to a destination that accepts
    its SOP class only in `accepted`; TranscodeError when none carries it losslessly."""
    refused = f"the destination does not accept {_name(source)} for this SOP class"
    if not is_losslessly_decodable(source):
        raise TranscodeError(f"{refused}, and {_name(source)} cannot be transcoded without "
                             f"loss (accepted: {_names(accepted)})")
    for syntax in (*LOSSLESS_TARGETS, *LOSSLESS_ENCODINGS):
        if syntax in accepted and syntax != source and can_write(syntax):
            return Transcode(source, syntax, f"{refused} (accepted: {_names(accepted)})")
    raise TranscodeError(f"{refused}, nor any uncompressed syntax or lossless compression "
                         f"this runner can write (accepted: {_names(accepted)})")


def can_write(syntax: str) -> bool:
    """Whether an instance can be written in `syntax` here: uncompressed, or a lossless
    compression whose encoder is installed."""
    return syntax in LOSSLESS_TARGETS or syntax in WRITABLE_ENCODINGS


def is_losslessly_decodable(syntax: str) -> bool:
    """Whether an instance in `syntax` can be re-encoded elsewhere without any change of
    its pixels: uncompressed, deflated, or a lossless compression with a decoder here."""
    uid = UID(syntax)
    if not uid.is_transfer_syntax:
        return False  # one pydicom does not know (JPEG XL, say): its encoding is unknown
    if not uid.is_compressed:
        return True
    if syntax not in LOSSLESS_COMPRESSED:
        return False
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


def transcode(ds: Dataset, plan: Transcode) -> Dataset:
    """`ds` (read with its file meta) re-encoded for `plan.sent_syntax`, in place: pixel
    data decoded when compressed, the SOP Instance UID and every other attribute kept."""
    source, target = UID(plan.source_syntax), UID(plan.sent_syntax)
    if source.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False, as_rgb=False)
        except Exception as error:  # the plugins raise many kinds on a broken codestream
            raise TranscodeError(f"cannot decode {_name(source)} pixel data: {error}") \
                from error
        source = UID(ds.file_meta.TransferSyntaxUID)
    if target.is_compressed:
        return _encode(ds, source, target)
    if source.is_little_endian != target.is_little_endian:
        ds.walk(_swap_words)
    ds.file_meta.TransferSyntaxUID = target
    return ds


def _encode(ds: Dataset, source: UID, target: UID) -> Dataset:
    """`ds` (native pixel data in `source`) compressed losslessly into `target`, proven by
    decoding the result again: the same pixels, or TranscodeError."""
    if "PixelData" not in ds:  # the other elements of a compressed syntax are Explicit VR LE
        if not source.is_little_endian:
            ds.walk(_swap_words)
        ds.file_meta.TransferSyntaxUID = target
        return ds
    try:
        pixels = ds.pixel_array
        ds.compress(target, pixels, generate_instance_uid=False)
        same = numpy.array_equal(ds.pixel_array, pixels)
    except Exception as error:  # the encoders raise many kinds on what they cannot take
        raise TranscodeError(f"cannot encode the pixel data in {_name(target)}: {error}") \
            from error
    if not same:
        raise TranscodeError(f"{_name(target)} did not give back the same pixels: not sent")
    return ds


# Values pydicom keeps as bytes although they are words of this many bytes, whose byte
# order is the transfer syntax's (PS3.5 6.2): Pixel Data in OW, overlays, float pixels...
_WORD_BYTES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_words(_ds: Dataset, element: DataElement) -> None:
    """Turn one element's words to the other byte order (big <-> little endian)."""
    size = _WORD_BYTES.get(str(element.VR))
    value = element.value
    if size is None or not isinstance(value, bytes | bytearray) or len(value) % size:
        return
    words = bytearray(value)
    for offset in range(size):
        words[offset::size] = value[size - 1 - offset::size]
    element.value = bytes(words)


def _name(syntax: str) -> str:
    return str(UID(syntax).name)


def _names(syntaxes: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(_name(s) for s in syntaxes)) or "none"
