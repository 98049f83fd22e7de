"""The JSON Schema of the site profile, as committed in schemas/site-profile.schema.json."""

from __future__ import annotations

from typing import Any

from runner.profile.models import SiteProfile

SCHEMA_ID = "https://pacsmig.invalid/schemas/site-profile.schema.json"


def profile_json_schema() -> dict[str, Any]:
    """The profile's JSON Schema (draft 2020-12), keys by their YAML names."""
    body = SiteProfile.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "pacsmig site profile, version 1", **body}
