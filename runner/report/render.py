"""The sign-off report: one self-contained HTML page (inline CSS and SVG, no scripts)."""

from __future__ import annotations

from importlib import resources
from string import Template

from runner.report import fmt
from runner.report.census import census_section
from runner.report.changes import changes_section
from runner.report.collect import ReportData
from runner.report.forecast import forecast_section
from runner.report.markup import css_string, para, tag, text
from runner.report.operations import devices_section, throughput_section, work_section
from runner.report.priority import priority_section
from runner.report.sections import (
    exceptions_section,
    header_section,
    signoff_section,
    summary_section,
    totals_section,
)


def render_signoff(data: ReportData) -> str:
    """The whole sign-off report as HTML text."""
    ident = data.identity
    template = Template((resources.files("runner.report") / "signoff.html")
                        .read_text("utf-8"))
    sections = [header_section(data), summary_section(data), census_section(data),
                totals_section(data),
                throughput_section(data), devices_section(data), work_section(data),
                forecast_section(data), priority_section(data), changes_section(data),
                exceptions_section(data),
                signoff_section(data)]
    footer = (f"{ident.site_name}: PACS migration sign-off, generated "
              f"{fmt.when(ident.generated_at)} ({ident.timezone})")
    return template.substitute(
        title=text(f"Migration sign-off: {ident.site_name}"),
        footer=css_string(footer),
        body="\n".join(sections) + tag("footer", para(footer, "note")))
