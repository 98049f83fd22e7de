"""The storage tiers a study can be on at the source: the profile orders them (tiering), the
inventory says where each study is (InstanceAvailability or a CSV)."""

from __future__ import annotations

from enum import StrEnum


class Location(StrEnum):
    """Where a study lives on the source PACS (from InstanceAvailability or a CSV)."""

    LOCAL = "local"
    NEARLINE = "nearline"
    OFFLINE = "offline"
