"""`ctl task`: callback tasks, manual (a reminder) or automatic (ctl serve dials)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from ctl.cli.app import ID, AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import cell, render
from ctl.views import task_row

if TYPE_CHECKING:
    pass


TASK_COLUMNS = ["id", "due_at", "state", "auto", "number", "project", "assignee", "attempts", "outcome"]


@click.group(cls=CtlGroup)
def task() -> None:
    """Callback tasks: manual (a reminder) or automatic (ctl serve dials)."""


@task.command("add")
@click.option("--call", "call_id", type=ID, default=None, help="Call back the client of this call (its project).")
@click.option("--number", default=None, help="Call back this number.")
@click.option("--at", "at_text", required=True, metavar="TIME",
              help="+90s, +10m, +2h, +1d, or an ISO date-time (local time, or --tz, or with an offset).")
@click.option("--tz", "tz_name", default=None, help="The time zone of a --at without an offset (e.g. Europe/Moscow).")
@click.option("--assignee", default=None, metavar="EXT", help="Who calls back (default: the call's operator).")
@click.option("--auto", is_flag=True, help="ctl serve dials at that time and connects the assignee or a colleague.")
@click.option("--project", "project_name", default=None, help="The project (with --number).")
@click.option("--note", default=None, help="What the callback is about.")
@click.option("--by", "by_ext", default=None, metavar="EXT", help="Who creates it.")
@json_option
@pass_app
def task_add(app: AppContext, call_id: int | None, number: str | None, at_text: str, tz_name: str | None,
             assignee: str | None, auto: bool, project_name: str | None, note: str | None, by_ext: str | None) -> None:
    """Add a callback task."""
    from ctl.services.directory import get_operator
    from ctl.services.tasks import add_task, parse_when, zone

    now = datetime.now(UTC)
    due = parse_when(at_text, now, zone(tz_name))
    with app.store().transaction() as session:
        if by_ext is not None:
            get_operator(session, by_ext)
        row = task_row(add_task(session, due=due, call_id=call_id, number=number, assignee=assignee, auto=auto,
                                project_name=project_name, note=note, by=by_ext, now=now))
    render(app, row, f"task {row['id']}: {'automatic ' if row['auto'] else ''}callback to {row['number']} "
                     f"at {cell(row['due_at'])}{' for ' + row['assignee'] if row['assignee'] else ''}")


@task.command("list")
@click.option("--state", default=None, help="open, pending, placing, done, overdue or cancelled.")
@click.option("--assignee", default=None, metavar="EXT")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_app
def task_list(app: AppContext, state: str | None, assignee: str | None, limit: int) -> None:
    """List tasks, soonest first."""
    from ctl.services.tasks import list_tasks

    with app.store().transaction() as session:
        rows = [task_row(t) for t in list_tasks(session, state, assignee, limit)]
    render(app, rows, columns=TASK_COLUMNS)


@task.command("due")
@click.option("--assignee", default=None, metavar="EXT")
@json_option
@pass_app
def task_due(app: AppContext, assignee: str | None) -> None:
    """Manual callbacks due within [tasks] remind_minutes, and overdue ones."""
    from ctl.services.tasks import due_tasks

    with app.store().transaction() as session:
        rows = [task_row(t) for t in due_tasks(session, app.settings.tasks, datetime.now(UTC), assignee)]
    render(app, rows, columns=TASK_COLUMNS)


def _close_command(name: str, state: str, help_text: str) -> None:
    @task.command(name, help=help_text)
    @click.argument("task_id", type=ID)
    @click.option("--comment", default=None, help="Why, or what came of it.")
    @json_option
    @pass_app
    def close(app: AppContext, task_id: int, comment: str | None) -> None:
        from ctl.services.tasks import close_task

        with app.store().transaction() as session:
            row = task_row(close_task(session, task_id, state, comment))
        render(app, row, f"task {row['id']}: {row['state']}")


_close_command("done", "done", "Mark TASK_ID done (the client was called back).")
_close_command("cancel", "cancelled", "Cancel TASK_ID.")
