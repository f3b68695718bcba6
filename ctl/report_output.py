"""A report as a table (durations as H:MM:SS), CSV (plain numbers) or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ctl.services.reports import Column, Report

FORMATS = ("table", "csv", "json")


def duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _plain(report: Report, column: Column, value: Any) -> Any:
    """The value for CSV and JSON: seconds as integers, shares rounded to 0.1 %, times ISO in the zone."""
    if value is None:
        return None
    if column.kind in ("int", "seconds"):
        return int(value)
    if column.kind == "percent":
        return round(float(value), 1)
    if column.kind == "bool":
        return bool(value)
    if column.kind == "time" and isinstance(value, datetime):
        return value.astimezone(report.period.zone).isoformat(timespec="seconds")
    return value


def _cell(report: Report, column: Column, value: Any) -> str:
    if value is None:
        return "-"
    if column.kind == "seconds":
        return duration(int(value))
    if column.kind == "percent":
        return f"{float(value):.1f}%"
    if column.kind == "bool":
        return "yes" if value else "no"
    if column.kind == "time" and isinstance(value, datetime):
        return value.astimezone(report.period.zone).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def plain_rows(report: Report) -> list[dict[str, Any]]:
    return [{c.key: _plain(report, c, row.get(c.key)) for c in report.columns} for row in report.rows]


# A spreadsheet takes a cell starting with one of these for a formula (=HYPERLINK(…) in a
# name is CSV injection): OWASP's advice is a leading single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell, defused if it would start a formula; numbers (negative ones too) stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def as_csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    """CSV lines ending in "\n". The writer's terminator is "\r\n" so that it quotes a cell
    holding a lone "\r" too (with "\n" alone it would not, and the row would break in two);
    each row's own terminator is then made "\n", as the other formats end their lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    lines = []
    for values in (header, *rows):
        writer.writerow(values)
        lines.append(buffer.getvalue().removesuffix("\r\n"))
        buffer.seek(0)
        buffer.truncate()
    return "\n".join(lines)


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"report": report.name, "from": report.period.first.isoformat(),
                           "to": report.period.last.isoformat(), "tz": report.period.zone_name,
                           "rows": plain_rows(report)}, ensure_ascii=False)
    if fmt == "csv":
        return as_csv([c.key for c in report.columns],
                      ([csv_safe(row[c.key]) for c in report.columns] for row in plain_rows(report)))
    title = (f"{report.name} report, {report.period.first} to {report.period.last} "
             f"({report.period.zone_name})")
    if not report.rows:
        return f"{title}\n(none)"
    headers = [c.key.upper() for c in report.columns]
    cells = [[_cell(report, c, row.get(c.key)) for c in report.columns] for row in report.rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [c.kind in ("int", "seconds", "percent") for c in report.columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if right else v.ljust(w)
                         for v, w, right in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([title, line(headers), *(line(r) for r in cells)])
