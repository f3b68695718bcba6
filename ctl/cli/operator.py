"""`ctl operator`: people, their statuses and their history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ctl.cli.app import AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import cell, render
from ctl.errors import ValidationError
from ctl.views import operator_row

if TYPE_CHECKING:
    from datetime import datetime

    from ctl.store.models import Operator


def _status_row(person: Operator, changed: bool) -> dict[str, Any]:
    return {"extension": person.extension, "status": person.status, "reason": person.status_reason,
            "since": person.status_changed_at, "changed": changed}


@click.group(cls=CtlGroup)
def operator() -> None:
    """Operators, supervisors, admins and owners."""


@operator.command("add")
@click.argument("extension")
@click.option("--name", required=True, help="Full name.")
@click.option("--role", default="operator", show_default=True, help="owner, admin, supervisor or operator.")
@click.option("--dial-string", default=None, help="How to ring this person (default from [calls] operator_dial).")
@json_option
@pass_app
def operator_add(app: AppContext, extension: str, name: str, role: str, dial_string: str | None) -> None:
    """Add a person with extension EXTENSION."""
    from ctl.services.directory import add_operator

    with app.store().transaction() as session:
        row = operator_row(add_operator(session, app.settings.calls, extension, name, role, dial_string))
    render(app, row, f"added {row['role']} {row['extension']} ({row['name']}), rung via {row['dial_string']}")


@operator.command("list")
@json_option
@pass_app
def operator_list(app: AppContext) -> None:
    """List everyone."""
    from ctl.services.directory import list_operators

    with app.store().transaction() as session:
        rows = [operator_row(o) for o in list_operators(session)]
    render(app, rows, columns=["extension", "name", "role", "dial_string", "status"])


@operator.command("status")
@click.argument("extension")
@click.argument("status", required=False, metavar="[available|break|dnd]")
@click.option("--reason", default=None, help="Why a break or do-not-disturb: one of [operators] pause_reasons.")
@click.option("--by", "by_ext", default=None, metavar="EXT", help="Who sets it (a supervisor or admin for others).")
@json_option
@pass_app
def operator_status(app: AppContext, extension: str, status: str | None, reason: str | None,
                    by_ext: str | None) -> None:
    """Show EXTENSION's status, or set it by hand: available, break or dnd."""
    from ctl.services.directory import get_operator
    from ctl.services.operators import set_status_by_hand

    with app.store().transaction() as session:
        if status is None:
            if reason is not None or by_ext is not None:
                raise ValidationError("--reason and --by go with a new status")
            person, changed = get_operator(session, extension), False
        else:
            person, changed = set_status_by_hand(session, app.settings.operators, extension, status, reason, by_ext)
        row = _status_row(person, changed)
    note = "" if status is None or changed else " (unchanged)"
    render(app, row, f"{row['extension']}: {row['status']}{' — ' + row['reason'] if row['reason'] else ''} "
                     f"since {cell(row['since'])}{note}")


@operator.command("history")
@click.argument("extension")
@click.option("--since", "since_text", default=None, help="Only changes from this ISO date or time.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_app
def operator_history(app: AppContext, extension: str, since_text: str | None, limit: int) -> None:
    """EXTENSION's status changes, newest first."""
    from ctl.services.operators import status_history
    from ctl.validation import parse_since

    since: datetime | None = parse_since(since_text) if since_text else None
    with app.store().transaction() as session:
        rows = [{"at": c.changed_at, "from": c.from_status, "to": c.to_status, "reason": c.reason,
                 "source": c.source, "by": c.set_by, "call": c.call_id}
                for c in status_history(session, extension, since, limit)]
    render(app, rows, columns=["at", "from", "to", "reason", "source", "by", "call"])


@operator.command("logout")
@click.argument("extension")
@click.option("--force", is_flag=True, help="Also while in a call (an admin's forced logout; the call goes on).")
@click.option("--reason", default=None, help="Why (kept in the history; default 'forced logout' with --force).")
@click.option("--by", "by_ext", default=None, metavar="EXT", help="The admin or owner logging someone else out.")
@json_option
@pass_app
def operator_logout(app: AppContext, extension: str, force: bool, reason: str | None, by_ext: str | None) -> None:
    """Log EXTENSION out: offline, and paused in every queue by `ctl serve`."""
    from ctl.services.operators import logout

    with app.store().transaction() as session:
        person, changed = logout(session, extension, force, reason, by_ext)
        row = _status_row(person, changed)
    render(app, row, f"{row['extension']}: offline{' — ' + row['reason'] if row['reason'] else ''}"
                     f"{'' if changed else ' (unchanged)'}")


@operator.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--delimiter", default=",", show_default=True, type=click.Choice([",", ";", "\t"]),
              help="The field separator.")
@json_option
@pass_app
def operator_import(app: AppContext, csv_file: Path, delimiter: str) -> None:
    """Add the people of CSV_FILE (columns extension,name[,role,dial_string,projects]): all rows or none."""
    from ctl.services.importing import MAX_BYTES, import_operators

    if not csv_file.is_file():  # /dev/zero or a FIFO would never end
        raise ValidationError(f"{csv_file}: not a regular file")
    try:
        with csv_file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # one byte over is enough to refuse it
    except OSError as error:
        raise ValidationError(f"{csv_file}: {error.strerror}") from None
    with app.store().transaction() as session:
        result = import_operators(session, app.settings.calls, data, delimiter)
    render(app, {"added": result.added, "memberships": result.memberships},
           f"imported {result.added} people ({result.memberships} project memberships)")


@operator.command("remove")
@click.argument("extension")
@json_option
@pass_app
def operator_remove(app: AppContext, extension: str) -> None:
    """Remove the person with extension EXTENSION (their calls stay, unassigned)."""
    from ctl.services.directory import remove_operator

    with app.store().transaction() as session:
        removed = operator_row(remove_operator(session, extension))
    render(app, removed, f"removed {removed['extension']} ({removed['name']})")
