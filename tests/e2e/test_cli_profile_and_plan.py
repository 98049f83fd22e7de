"""The CLI as a consultant uses it: validate, schema and the dry-run plan, as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SPEC = ROOT / "tests" / "data" / "spec"
PROFILE = SPEC / "site-profile.v1.yaml"
INVENTORY = SPEC / "inventory.example.csv"


def pacsmig(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_plan_of_spec_profile_takes_local_studies_oldest_first_then_nearline(
        tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = pacsmig("plan", PROFILE, "--inventory", INVENTORY, "--json", out)
    assert result.returncode == 0, result.stderr
    plan = json.loads(out.read_text())
    assert plan["site"] == "example-trust"
    assert [(p["tier"], p["studies"], p["instances"], p["gb"]) for p in plan["phases"]] == [
        ("local", 3, 893, 0.36), ("nearline", 2, 422, 0.23)]
    assert [p["order"] for p in plan["phases"]] == [
        ["1.2.826.0.1.3680043.8.498.1003", "1.2.826.0.1.3680043.8.498.1004",
         "1.2.826.0.1.3680043.8.498.1005"],
        ["1.2.826.0.1.3680043.8.498.1001", "1.2.826.0.1.3680043.8.498.1002"]]
    assert "Dry run: no C-MOVE and no C-STORE was issued." in result.stdout
    assert "Map PatientID through" in result.stdout
    assert "Throttle in force now (" in result.stdout and "next change" in result.stdout


def test_plan_is_the_same_when_compiled_twice(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    pacsmig("plan", PROFILE, "--inventory", INVENTORY, "--json", first)
    pacsmig("plan", PROFILE, "--inventory", INVENTORY, "--json", second)
    assert first.read_bytes() == second.read_bytes()


def test_bad_inventory_row_exits_2_with_its_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "inv.csv"
    lines = INVENTORY.read_text().splitlines()
    lines[3] = lines[3].replace("20120611", "20121311")
    bad.write_text("\n".join(lines) + "\n")
    result = pacsmig("plan", PROFILE, "--inventory", bad)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:4:")
    assert "Traceback" not in result.stderr


def test_validate_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "site.yaml"
    text = PROFILE.read_text().replace("port: 11112", "port: 99999").replace(
        "throttle: standard", "throttle: fastest")
    broken.write_text(text)
    (tmp_path / "lookups").mkdir()
    (tmp_path / "lookups" / "patient-ids.csv").write_text("from,to\n")
    result = pacsmig("validate", PROFILE, broken)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{broken}:") for line in lines)
    assert "Traceback" not in result.stderr


def test_validate_of_valid_profiles_exits_0() -> None:
    profiles = sorted((ROOT / "site_profiles").glob("*.yaml"))
    result = pacsmig("validate", PROFILE, *profiles)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == len(profiles) + 1


def test_schema_command_prints_the_committed_schema() -> None:
    result = pacsmig("schema")
    committed = (ROOT / "schemas" / "site-profile.schema.json").read_text()
    assert json.loads(result.stdout) == json.loads(committed)


def test_unknown_option_is_a_usage_error_with_exit_2() -> None:
    result = pacsmig("plan", PROFILE, "--no-such-option")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
