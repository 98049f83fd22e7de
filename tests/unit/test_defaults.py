"""Each default is declared once (runner.profile.defaults, the profile's models): the DICOM
layer's plain values, the committed JSON Schema and the README's table of keys agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from runner.dicom.listener import ListenerConfig
from runner.dicom.peer import DicomSettings
from runner.dicom.ul.acceptor import AcceptorPolicy
from runner.profile import defaults
from runner.profile.models import SiteProfile

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "site-profile.schema.json"
README = ROOT / "README.md"

DECLARED = {
    "dicom.acse_timeout": defaults.ACSE_TIMEOUT,
    "dicom.dimse_timeout": defaults.DIMSE_TIMEOUT,
    "dicom.network_timeout": defaults.NETWORK_TIMEOUT,
    "dicom.connection_timeout": defaults.CONNECTION_TIMEOUT,
    "dicom.max_pdu": defaults.MAX_PDU,
    "listener.max_associations": defaults.LISTENER_MAX_ASSOCIATIONS,
    "listener.memory_wait_seconds": defaults.LISTENER_MEMORY_WAIT_SECONDS,
}


def model_default(dotted: str) -> Any:
    """The profile model's default for a key path like `source.health.stall_timeout`
    (`[]` steps into list items)."""
    model: type[BaseModel] = SiteProfile
    *sections, key = dotted.replace("[]", "").split(".")
    for section in sections:
        model = _model_of(model.model_fields[_field_name(model, section)].annotation)
    info = model.model_fields[_field_name(model, key)]
    return info.get_default(call_default_factory=True)


def _field_name(model: type[BaseModel], key: str) -> str:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name
    raise KeyError(f"{model.__name__} has no key {key}")


def _model_of(annotation: Any) -> type[BaseModel]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        try:
            return _model_of(arg)
        except TypeError:
            continue
    raise TypeError(f"no model in {annotation}")


def readme_defaults() -> dict[str, str]:
    """The README's table of optional keys: each key path -> its default as written, for
    rows that list several keys against as many defaults (`a.x` / `y` | 1 / 2)."""
    found: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        keys = re.findall(r"`([^`]+)`", cells[0])
        if " / " not in cells[0] and len(keys) > 1:
            continue  # a list of keys sharing a meaning, not a default each
        values = [v.strip() for v in cells[1].split(" / ")]
        if len(values) != len(keys):
            continue
        section = keys[0].rpartition(".")[0]
        for key, value in zip(keys, values, strict=True):
            found[key if "." in key else f"{section}.{key}"] = value
    return found


def as_written(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"`{value}`"
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_profile_models_take_the_declared_defaults() -> None:
    for key, value in DECLARED.items():
        assert model_default(key) == value, key


def test_the_dicom_layer_takes_the_declared_defaults() -> None:
    settings = DicomSettings()
    policy = AcceptorPolicy("LISTENER", frozenset({"A"}), {})

    assert (settings.acse_timeout, settings.dimse_timeout, settings.network_timeout,
            settings.connection_timeout, settings.max_pdu) == (
        defaults.ACSE_TIMEOUT, defaults.DIMSE_TIMEOUT, defaults.NETWORK_TIMEOUT,
        defaults.CONNECTION_TIMEOUT, defaults.MAX_PDU)
    config = ListenerConfig("LISTENER", frozenset({"A"}))
    assert (config.max_associations, config.memory_wait) == (
        defaults.LISTENER_MAX_ASSOCIATIONS, defaults.LISTENER_MEMORY_WAIT_SECONDS)
    assert (policy.max_pdu, policy.max_associations, policy.acse_timeout,
            policy.network_timeout) == (defaults.MAX_PDU, defaults.LISTENER_MAX_ASSOCIATIONS,
                                        defaults.ACSE_TIMEOUT, defaults.NETWORK_TIMEOUT)


def test_the_schema_shows_the_declared_defaults() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    dicom = schema["$defs"]["DicomOptions"]["properties"]
    listener = schema["$defs"]["Listener"]["properties"]

    for key, value in DECLARED.items():
        section, name = key.split(".")
        assert (dicom if section == "dicom" else listener)[name]["default"] == value, key


def test_the_readme_shows_the_declared_defaults() -> None:
    documented = readme_defaults()

    for key, value in DECLARED.items():
        assert key in documented, f"README's table of keys has no default for {key}"
        assert documented[key].removesuffix(" s") == as_written(value), key


@pytest.mark.parametrize("key", sorted(
    key for key, text in readme_defaults().items()
    if not text.startswith(("the ", "see "))))  # a default described in words
def test_every_default_in_the_readme_is_the_models(key: str) -> None:
    written = readme_defaults()[key].removesuffix(" s")

    assert written == as_written(model_default(key)), key
