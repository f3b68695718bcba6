"""The one way a command prints its result: JSON with --json, text otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click

from ctl.cli.app import AppContext

Row = dict[str, Any]


def render(app: AppContext, data: Row | Sequence[Row], text: str | Callable[[], None] | None = None,
           columns: Sequence[str] = ()) -> None:
    """Print `data` as one line of JSON with --json. Otherwise print `text` (or call it, when
    it prints by itself), else the generic form: key-value lines for a dict, a table
    (of `columns`, default every key) for a list."""
    if app.as_json:
        click.echo(json.dumps(data, default=_json_default, ensure_ascii=False, indent=None))
    elif callable(text):
        text()
    elif text is not None:
        click.echo(text)
    elif isinstance(data, dict):
        _pairs(data)
    else:
        _table(data, columns)


def _pairs(row: Row) -> None:
    width = max((len(key) for key in row), default=0)
    for key, value in row.items():
        click.echo(f"{key:<{width}}  {cell(value)}")


def _table(rows: Sequence[Row], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    headers = list(columns or rows[0].keys())
    cells = [[cell(row.get(h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def cell(value: Any) -> str:
    """One value as text: '-' for none, local time, yes/no, a list comma-separated."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")
