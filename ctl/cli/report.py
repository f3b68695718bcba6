"""`ctl report`: figures per day in a time zone, computed by the database."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ctl.cli.app import AppContext, CtlGroup, pass_app, remember_json
from ctl.errors import ValidationError


@click.group(cls=CtlGroup)
def report() -> None:
    """Figures per day in a time zone, computed by the database: occupancy, calls, results, monitoring."""


def _remember_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    remember_json(ctx, param, value == "json")
    return value


_REPORT_HELP = {
    "occupancy": "Time per status per operator per day (each status lasts until the next change).",
    "calls": "Calls per day, operator, project and direction: answered, missed, talk time.",
    "results": "Each client's last result per project: clients per result code, share successful.",
    "monitoring": "Monitor sessions per day, supervisor and operator: time listening, whispering, barging.",
}


def _report_command(name: str) -> None:
    @report.command(name, help=_REPORT_HELP[name])
    @click.option("--from", "first", default=None, metavar="DATE",
                  help="First day, YYYY-MM-DD, today or yesterday (default: today).")
    @click.option("--to", "last", default=None, metavar="DATE", help="Last day, inclusive (default: --from).")
    @click.option("--project", "project_name", default=None, help="Only this project's calls (its members' time).")
    @click.option("--operator", "operator_ext", default=None, metavar="EXT", help="Only this operator.")
    @click.option("--tz", "tz_name", default=None, help="The zone whose days are counted (default: the machine's).")
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
                  show_default=True, callback=_remember_format)
    @click.option("--clients", is_flag=True, hidden=name != "results",
                  help="results: one row per client (its last result) instead of per result code.")
    @pass_app
    def command(app: AppContext, first: str | None, last: str | None, project_name: str | None,
                operator_ext: str | None, tz_name: str | None, fmt: str, clients: bool) -> None:
        from ctl.report_output import render as render_report
        from ctl.services.reports import build, make_period, resolve_filters

        if clients and name != "results":
            raise ValidationError("--clients applies to the results report only")
        now = datetime.now(UTC)
        period = make_period(first, last, tz_name, now)
        with app.store().transaction() as session:
            filters = resolve_filters(session, project_name, operator_ext)
            built = build(session, name, period, filters, now, clients=clients)
        click.echo(render_report(built, fmt))


for _name in ("occupancy", "calls", "results", "monitoring"):
    _report_command(_name)
