"""The committed JSON Schema is exactly what `pacsmig schema` prints."""

from __future__ import annotations

import json
from pathlib import Path

from runner.profile.schema import profile_json_schema

COMMITTED = Path(__file__).parents[2] / "schemas" / "site-profile.schema.json"


def test_committed_schema_is_fresh() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == profile_json_schema(), (
        "schemas/site-profile.schema.json is stale: run `make schema` and commit it")


def test_schema_names_keys_as_written_in_yaml() -> None:
    schema = json.dumps(profile_json_schema())
    for yaml_key in ('"from"', '"with"', '"set"', '"copy"', '"delay_seconds"'):
        assert yaml_key in schema
    assert '"from_"' not in schema and '"set_"' not in schema


def test_schema_forbids_unknown_keys_everywhere() -> None:
    schema = profile_json_schema()
    objects = [schema, *schema["$defs"].values()]
    assert all(o.get("additionalProperties") is False for o in objects
               if o.get("type") == "object" and "properties" in o)
