"""Site profiles for tests: a valid profile aimed at peers on loopback, with overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from runner.dicom.peer import Peer


def profile_data(tmp_path: Path, devices: Sequence[tuple[str, Peer]], dest: Peer,
                 listener_port: int, **sections: Any) -> dict[str, Any]:
    """A profile as plain data: the given devices and destination, wide-open throttles."""
    data: dict[str, Any] = {
        "version": 1,
        "site": {"id": "test-site", "name": "Test Site", "timezone": "Europe/London"},
        "listener": {"ae_title": "PACSMIG", "host": "127.0.0.1", "port": listener_port,
                     "spool_dir": str(tmp_path / "spool"), "max_spool_gb": 2},
        "source": {"name": "Test source",
                   "devices": [{"id": i, "ae_title": p.ae_title, "host": p.host,
                                "port": p.port} for i, p in devices],
                   "calling_ae_title": "PACSMIG",
                   "inventory": {"from": "2000-01-01", "to": "today", "window_days": 3660}},
        "destination": {"name": "Test destination", "ae_title": dest.ae_title,
                        "host": dest.host, "port": dest.port,
                        "max_associations": 2, "verify": "instances"},
        "throttles": {"open": {"max_concurrent_retrieves": 4, "min_concurrent_retrieves": 4,
                               "delay_seconds": 0}},
        "redate": {"recent_days": 0},
        "reports": {"dir": str(tmp_path / "reports"), "mask_identifiers": True},
        "dicom": {"acse_timeout": 10, "dimse_timeout": 30, "network_timeout": 30},
    }
    return _merged(data, sections)


def write_profile(tmp_path: Path, data: Mapping[str, Any], name: str = "site.yaml") -> Path:
    """Write `data` as a YAML profile file; returns its path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    return path


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _merged(dict(base[key]), value)
        else:
            base[key] = value
    return base
