"""`ctl blacklist`: client numbers no originate path dials."""

from __future__ import annotations

import click

from ctl.cli.app import AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import render


@click.group(cls=CtlGroup)
def blacklist() -> None:
    """Client numbers that no originate path dials."""


@blacklist.command("add")
@click.argument("number")
@click.option("--reason", default=None, help="Why (shown when a call is refused).")
@json_option
@pass_app
def blacklist_add_command(app: AppContext, number: str, reason: str | None) -> None:
    """Never dial NUMBER."""
    from ctl.services.operators import blacklist_add

    with app.store().transaction() as session:
        row = blacklist_add(session, number, reason)
        added = {"number": row.number, "reason": row.reason, "added_at": row.added_at}
    render(app, added, f"blacklisted {added['number']}")


@blacklist.command("remove")
@click.argument("number")
@json_option
@pass_app
def blacklist_remove_command(app: AppContext, number: str) -> None:
    """Allow NUMBER again."""
    from ctl.services.operators import blacklist_remove

    with app.store().transaction() as session:
        removed = blacklist_remove(session, number).number
    render(app, {"number": removed}, f"removed {removed} from the blacklist")


@blacklist.command("list")
@json_option
@pass_app
def blacklist_list_command(app: AppContext) -> None:
    """List blacklisted numbers."""
    from ctl.services.operators import blacklist_list

    with app.store().transaction() as session:
        rows = [{"number": r.number, "reason": r.reason, "added_at": r.added_at} for r in blacklist_list(session)]
    render(app, rows, columns=["number", "reason", "added_at"])
