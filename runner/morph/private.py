"""Private tags at every depth: removed without converting the sequences that have none."""

from __future__ import annotations

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from runner.morph.rawscan import sequence_has_private
from runner.morph.view import Element, InstanceView, element_vr


def is_private(tag: int) -> bool:
    """Whether a tag is private (odd group)."""
    return bool(tag >> 16 & 1)


def strip_private(view: InstanceView) -> bool:
    """Remove every private tag, in sequences too; False when there was none."""
    changed = False
    for tag, elem in view.elements():
        if is_private(tag):
            changed = view.remove(tag) or changed
        elif element_vr(elem) == "SQ":
            cleaned = _clean_sequence(view, elem, view.ds)
            if cleaned is not None:
                view.substitute(cleaned)
                changed = True
    return changed


def _clean_sequence(view: InstanceView, elem: Element, parent: Dataset) -> DataElement | None:
    """A new sequence element without private tags, or None when it contains none."""
    if isinstance(elem, RawDataElement) and sequence_has_private(elem) is False:
        return None
    sequence = _converted(view, elem, parent)
    items = list(sequence.value or [])
    cleaned = [_clean_item(view, item) for item in items]
    if all(item is None for item in cleaned):
        return None
    kept = Sequence([new if new is not None else old for new, old in zip(cleaned, items,
                                                                         strict=True)])
    return DataElement(sequence.tag, "SQ", kept, is_undefined_length=sequence.is_undefined_length)


def _clean_item(view: InstanceView, item: Dataset) -> Dataset | None:
    """A copy of a sequence item without private tags, or None when it has none."""
    changes: dict[int, DataElement | None] = {}
    for tag in item.keys():  # noqa: SIM118 - iterating a Dataset converts its elements
        elem = item.get_item(tag)
        if is_private(tag):
            changes[tag] = None
        elif element_vr(elem) == "SQ":
            cleaned = _clean_sequence(view, elem, item)
            if cleaned is not None:
                changes[tag] = cleaned
    if not changes:
        return None
    copy = Dataset(parent_encoding=item._parent_encoding)
    for tag in item.keys():  # noqa: SIM118
        new = changes[tag] if tag in changes else item.get_item(tag)
        if new is not None:
            copy[tag] = new
    implicit, little = item.original_encoding
    copy.set_original_encoding(implicit, little, item.original_character_set)
    return copy


def _converted(view: InstanceView, elem: Element, parent: Dataset) -> DataElement:
    if not isinstance(elem, RawDataElement):
        return elem
    if parent is view.ds:
        return view.convert(elem)
    return InstanceView(parent, view.fallback).convert(elem)
