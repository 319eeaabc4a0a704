"""Reports: HTML, Markdown, CSV, XLSX and DHIS2 files for each audience."""

from kobo_tip.report.render import outside_due, render_reports

__all__ = ["outside_due", "render_reports"]
