"""Where a received instance waits while it is forwarded: in the memory spool (cut-through,
runner.dicom.arena) or in the spool. An instance held in memory is spilled to the spool when
it must wait (a forward to be tried again later, an instance set aside, the end of a run),
with a new receipt naming its file; the space of a forwarded instance is given back: at
once in memory, by the janitor (once the ledger holds the forward) on disk.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from io import BytesIO
from typing import BinaryIO

from runner.dicom.arena import IN_MEMORY, Arena
from runner.dicom.spool import Spool, SpoolFull
from runner.execute.sending.janitor import Janitor
from runner.execute.sending.seam import ForwardItem
from runner.execute.state import RunState
from runner.ledger import Ledger

log = logging.getLogger(__name__)


class Holding:
    """The memory spool and the spool, as sending sees them."""

    def __init__(self, state: RunState, ledger: Ledger, spool: Spool, janitor: Janitor,
                 arena: Arena | None = None) -> None:
        self.state = state
        self.ledger = ledger
        self.spool = spool
        self.janitor = janitor
        self.arena = arena

    def open(self, item: ForwardItem) -> BinaryIO:
        """The instance's bytes as a file (OSError if they cannot be read)."""
        if item.slot is not None and self.arena is not None:
            return BytesIO(self.arena.view(item.slot))
        return item.path.open("rb")

    def spill(self, item: ForwardItem) -> ForwardItem:
        """`item` moved to the spool when it is held in memory, recorded with a new receipt;
        as it was when it is not, or when the spool has no room (it stays in memory)."""
        if item.slot is None or self.arena is None:
            return item
        view = self.arena.view(item.slot)
        try:
            entry = self.spool.write_parts((view,))
        except (SpoolFull, OSError) as error:
            log.warning("an instance held in memory stays there: the spool refused it (%s)",
                        error)
            return item
        with self.state.lock:
            work = self.state.works[item.study_uid]
            copy = work.received.get(item.sop_instance_uid)
            if copy is not None:
                work.received[item.sop_instance_uid] = replace(copy, spool_name=entry.name)
        self.ledger.record_received(
            sop_instance_uid=item.sop_instance_uid, study_uid=item.study_uid,
            series_uid=copy.series_uid if copy is not None else "",
            sop_class_uid=item.sop_class_uid, transfer_syntax=item.transfer_syntax,
            nbytes=entry.size, spool_name=entry.name, checksum=entry.checksum)
        del view
        self.arena.free(item.slot)
        return replace(item, path=entry.path, spool_name=entry.name, slot=None)

    def release(self, item: ForwardItem) -> None:
        """`item` is forwarded: give its space back."""
        if item.slot is not None and self.arena is not None:
            self.arena.free(item.slot)
        elif item.spool_name != IN_MEMORY:  # else: held by a run that ended, nothing left
            self.janitor.discard_later(item.spool_name)
