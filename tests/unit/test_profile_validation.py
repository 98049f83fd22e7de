"""Profile validation: every problem reported, each at the exact line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runner.errors import Problem, ProfileError
from runner.morph.loaded import load_profile, validate_profile

SPEC = Path(__file__).parents[1] / "data" / "spec" / "site-profile.v1.yaml"

BASE = """\
version: 1
site:
  id: test-trust
  name: Test Trust
  timezone: Europe/London
listener:
  ae_title: MIGRATE
  port: 11112
  spool_dir: spool
source:
  name: Legacy
  devices:
    - id: wfm1
      ae_title: WFM1
      host: 10.20.0.5
      port: 104
  calling_ae_title: MIGRATE
  inventory:
    from: 2007-01-01
    to: today
destination:
  name: VNA
  ae_title: NEWVNA
  host: 10.30.0.9
  port: 104
throttles:
  standard:
    max_concurrent_retrieves: 4
    min_concurrent_retrieves: 2
    delay_seconds: "10 + study_mb / 35 * 20"
schedule:
  - throttle: standard
reports:
  dir: reports/test
"""


def problems_for(tmp_path: Path, text: str) -> list[Problem]:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return validate_profile(path)


def edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_spec_profile_validates_unchanged() -> None:
    assert validate_profile(SPEC) == []


def test_spec_profile_in_tests_is_the_shared_contract() -> None:
    shared = Path(__file__).parents[3] / "shared" / "spec" / "site-profile.v1.yaml"
    if not shared.exists():
        pytest.skip("shared/ is not beside this checkout")
    assert shared.read_text() == SPEC.read_text()


def test_minimal_profile_gets_defaults_for_optional_sections(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE)
    profile = load_profile(path).profile
    assert profile.redate.recent_days == 14
    assert profile.morphing == []
    assert [t.value for t in profile.tiering.order] == ["local", "nearline", "offline"]
    assert profile.listener.spool_dir == tmp_path / "spool"
    assert profile.destination.verify == "instances"


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("  name: Test Trust\n", "  name: [Test\n")))
    assert (p.line, p.message.startswith("YAML syntax error")) == (5, True)


def test_unsafe_python_tag_is_refused_at_its_value(tmp_path: Path) -> None:
    text = edited("  name: Test Trust\n", "  name: !!python/object/apply:os.system [ls]\n")
    p = only(problems_for(tmp_path, text))
    assert (p.line, p.column) == (4, 9)
    assert "!!python/object/apply:os.system is not allowed" in p.message


def test_unknown_key_is_reported_at_the_key_with_a_suggestion(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("  timezone:", "  timezon:")))
    assert (p.line, p.column) == (5, 3)
    assert "unknown key 'timezon' (did you mean 'timezone'?)" in p.message


def test_duplicate_yaml_key_is_reported(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("  name: Test Trust\n",
                                           "  name: Test Trust\n  name: Other\n")))
    assert (p.line, p.column) == (5, 3)
    assert "duplicate key 'name'" in p.message


@pytest.mark.parametrize(("old", "new", "line", "column", "words"), [
    ("  port: 11112", "  port: 70000", 8, 9, "less than or equal to 65535"),
    ("  port: 11112", "  port: '11112'", 8, 9, "valid integer"),
    ("  ae_title: MIGRATE\n  port", "  ae_title: MIGRATE_TOO_LONG_TITLE\n  port", 7, 13,
     "1 to 16 characters"),
    ("  ae_title: MIGRATE\n  port", "  ae_title: 'MIG\\\\RATE'\n  port", 7, 13, "without"),
    ("    from: 2007-01-01", "    from: 2007-13-01", 19, 11, "date"),
    ("  timezone: Europe/London", "  timezone: Europe/Lundon", 5, 13, "unknown time zone"),
    ("  id: test-trust", "  id: Test Trust", 3, 7, "lowercase letters"),
    ("      host: 10.20.0.5", "      host: 'not a host'", 15, 13, "not an IP address"),
], ids=["port-range", "port-type", "ae-length", "ae-charset", "date", "timezone", "slug",
        "host"])
def test_type_and_range_errors_point_at_the_value(
        tmp_path: Path, old: str, new: str, line: int, column: int, words: str) -> None:
    p = only(problems_for(tmp_path, edited(old, new)))
    assert (p.line, p.column) == (line, column)
    assert words in p.message


def test_hours_out_of_range_are_refused(tmp_path: Path) -> None:
    text = edited("  - throttle: standard", "  - hours: '08:00-24:30'\n    throttle: standard")
    p = only(problems_for(tmp_path, text))
    assert (p.line, p.column) == (32, 12)
    assert "HH:MM-HH:MM" in p.message


def test_missing_required_key_points_at_its_section(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("  calling_ae_title: MIGRATE\n", "")))
    assert (p.line, p.column) == (11, 3)
    assert p.message == "source.calling_ae_title: required key is missing"


def test_from_after_to_is_a_cross_field_error(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("    to: today", "    to: 2006-01-01")))
    assert (p.line, p.column) == (19, 11)
    assert "'from' (2007-01-01) is after 'to' (2006-01-01)" in p.message


def test_from_after_today_is_an_error_at_from_when_to_is_today(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("    from: 2007-01-01", "    from: 2999-01-01")))
    assert (p.line, p.column) == (19, 11)
    assert "'from' (2999-01-01) is after 'to' (today, " in p.message


def test_min_above_max_concurrency_is_reported(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("min_concurrent_retrieves: 2",
                                           "min_concurrent_retrieves: 5")))
    assert (p.line, p.column) == (29, 31)
    assert "above max_concurrent_retrieves (4)" in p.message


def test_schedule_naming_an_undefined_throttle_lists_the_defined_ones(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("  - throttle: standard", "  - throttle: fast")))
    assert (p.line, p.column) == (32, 15)
    assert "'fast', which is not defined (defined: standard)" in p.message


def test_duplicate_devices_and_clashing_ports_are_reported(tmp_path: Path) -> None:
    second = ("    - id: wfm1\n      ae_title: WFM1\n      host: 10.20.0.5\n      port: 104\n"
              "  calling_ae_title: MIGRATE")
    problems = problems_for(tmp_path, edited("  calling_ae_title: MIGRATE", second))
    assert [(p.line, p.column) for p in problems] == [(17, 11), (18, 17), (20, 13)]
    assert "duplicate device id 'wfm1'" in problems[0].message
    assert "already used by source device 1" in problems[2].message


def test_device_using_the_listener_ae_title_is_refused(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("      ae_title: WFM1", "      ae_title: MIGRATE")))
    assert (p.line, p.column) == (14, 17)
    assert "listener's own AE title" in p.message


def test_formula_error_points_inside_the_expression(tmp_path: Path) -> None:
    text = edited('"10 + study_mb / 35 * 20"', '"10 + study_mb ** 2"')
    p = only(problems_for(tmp_path, text))
    assert (p.line, p.column) == (30, 35)
    assert "`**` (power) is not allowed" in p.message


def test_formula_with_unknown_name_is_refused(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("study_mb / 35", "study_size / 35")))
    assert "unknown name 'study_size'" in p.message


@pytest.mark.parametrize(("rule", "column", "words"), [
    ("  - set: {InstitutionNme: X}", 11, "did you mean 'InstitutionName'"),
    ("  - delete: ['(0009,0010)', Bogus]", 29, "unknown DICOM keyword 'Bogus'"),
    ("  - replace: {tag: AccessionNumber, pattern: '^(\\d+$', with: 'A\\1'}", 48,
     "invalid regular expression"),
    ("  - map: {tag: PatientID, table: nowhere.csv}", 34, "file not found"),
    ("  - when: {Modality: {matches: '[a'}}\n    set: {InstitutionName: X}", 33,
     "invalid regular expression"),
    ("  - delete: [OtherPatientIDs]\n    remove_private: true", 5, "exactly one action"),
], ids=["keyword", "keyword-in-list", "regex", "lookup-table", "condition-regex", "two-actions"])
def test_morphing_rule_errors_are_located(tmp_path: Path, rule: str, column: int,
                                          words: str) -> None:
    text = BASE + "morphing:\n" + rule + "\n"
    p = only(problems_for(tmp_path, text))
    assert (p.line, p.column) == (36, column)
    assert words in p.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (edited("  port: 11112", "  port: 0")
            .replace("  timezone: Europe/London", "  timezone: Mars/Base")
            .replace("  - throttle: standard", "  - throttle: fast")
            .replace('"10 + study_mb / 35 * 20"', '"os.system(1)"'))
    problems = problems_for(tmp_path, text)
    assert [p.line for p in problems] == [5, 8, 30, 32]


def test_load_profile_raises_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(edited("  port: 11112", "  port: 0"))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(caught.value).startswith(f"{path}:8:9: listener.port:")


def test_empty_and_non_mapping_documents_are_refused(tmp_path: Path) -> None:
    assert "this is empty" in only(problems_for(tmp_path, "")).message
    assert "this is a list" in only(problems_for(tmp_path, "- a\n- b\n")).message


def test_missing_file_and_binary_file_are_reported(tmp_path: Path) -> None:
    assert only(validate_profile(tmp_path / "nope.yaml")).message == "file not found"
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in only(validate_profile(tmp_path / "bin.yaml")).message


def test_alias_bomb_is_refused_without_exhausting_memory(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1},"
              f" *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]
    problems = problems_for(tmp_path, "\n".join(lines) + "\n")
    assert any("too large" in p.message for p in problems)


def test_problem_lines_have_the_path_line_column_format(tmp_path: Path) -> None:
    p = only(problems_for(tmp_path, edited("  port: 11112", "  port: -1")))
    assert str(p) == f"{tmp_path / 'site.yaml'}:8:9: listener.port: " \
                     "Input should be greater than or equal to 1"


def test_profile_text_dedented_helper_is_valid(tmp_path: Path) -> None:
    assert problems_for(tmp_path, textwrap.dedent(BASE)) == []
