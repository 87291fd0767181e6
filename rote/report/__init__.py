"""The optimization report: composed from the analyzer and the tracker, rendered as HTML or JSON."""

from __future__ import annotations

from rote.report.compose import ReportBuilder, compose_report
from rote.report.html import render_html

__all__ = ["ReportBuilder", "compose_report", "render_html"]
