"""Reports: HTML, Markdown, CSV, XLSX and DHIS2 files for each audience."""

from kobo_tip.report.render import render_reports

__all__ = ["render_reports"]
