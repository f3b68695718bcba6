"""`ctl monitor`: listen, whisper and barge, the session list and the monitoring log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ctl.cli.app import ID, AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import cell, render
from ctl.cli.pbx import on_switch, switch_for
from ctl.cli.remote import serve_of
from ctl.errors import ValidationError
from ctl.views import monitor_log_rows, session_row

if TYPE_CHECKING:
    pass


@click.group(cls=CtlGroup)
def monitor() -> None:
    """Listen, whisper or barge into an operator's call (one monitor per call)."""


def _start_command(mode_name: str, help_text: str) -> None:
    @monitor.command(mode_name, help=help_text)
    @click.argument("operator_ext", metavar="OPERATOR_EXT")
    @click.option("--by", "supervisor_ext", required=True, metavar="EXT", help="The supervisor, rung first.")
    @click.option("--follow", is_flag=True, help="Stay on when the call ends and join the operator's next call.")
    @json_option
    @pass_app
    def start(app: AppContext, operator_ext: str, supervisor_ext: str, follow: bool) -> None:
        serve = serve_of(app)
        if serve is not None:  # serve holds the PBX connection: no login per command
            session_id = int(serve.call("POST", "/monitor/sessions", json={
                "operator": operator_ext, "mode": mode_name, "follow": follow, "by": supervisor_ext})["session"])
        else:
            session_id = _start_here(app, mode_name, operator_ext, supervisor_ext, follow)
        render(app, {"session": session_id, "mode": mode_name, "operator": operator_ext, "by": supervisor_ext,
                     "follow": follow},
               f"session {session_id}: ringing {supervisor_ext}; on answer, {mode_name} on {operator_ext}'s call")


def _start_here(app: AppContext, mode_name: str, operator_ext: str, supervisor_ext: str, follow: bool) -> int:
    from ctl.services.monitoring import check_monitoring, parse_mode, start_monitoring

    settings = app.settings
    switch = switch_for(app, people=[operator_ext, supervisor_ext])
    store = app.store()
    mode = parse_mode(mode_name)
    check_monitoring(store, settings, mode, operator_ext, supervisor_ext)
    return on_switch(switch, lambda connected: start_monitoring(store, connected, settings, mode, operator_ext,
                                                                supervisor_ext, follow))


_start_command("listen", "Hear the operator and the client; nobody hears you.")
_start_command("whisper", "Hear both; only the operator hears you.")
_start_command("barge", "Hear both; both hear you.")


@monitor.command("mode")
@click.argument("session_id", type=ID, metavar="SESSION")
@click.argument("mode_name", metavar="listen|whisper|barge")
@json_option
@pass_app
def monitor_mode(app: AppContext, session_id: int, mode_name: str) -> None:
    """Switch a live session's mode; the supervisor's call stays up."""
    from ctl.services.monitoring import change_monitor_mode, check_mode_change, parse_mode

    mode = parse_mode(mode_name)
    serve = serve_of(app)
    if serve is not None:
        serve.call("PATCH", f"/monitor/sessions/{session_id}", json={"mode": mode.value})
        render(app, {"session": session_id, "mode": mode.value}, f"session {session_id}: {mode.value}")
        return
    store = app.store()
    switch = switch_for(app, session_id=session_id)
    if check_mode_change(store, app.settings, session_id, mode) is not None:
        on_switch(switch, lambda connected: change_monitor_mode(store, connected, app.settings, session_id, mode))
    render(app, {"session": session_id, "mode": mode.value}, f"session {session_id}: {mode.value}")


@monitor.command("stop")
@click.argument("session_id", type=ID, required=False, metavar="[SESSION]")
@click.option("--by", "supervisor_ext", default=None, metavar="EXT", help="Stop this supervisor's active session.")
@json_option
@pass_app
def monitor_stop(app: AppContext, session_id: int | None, supervisor_ext: str | None) -> None:
    """End a session: the supervisor's leg is hung up."""
    from ctl.services.monitoring import check_monitor_stop, stop_monitoring

    if (session_id is None) == (supervisor_ext is None):
        raise ValidationError("give a SESSION or --by EXT (one of them)")
    serve = serve_of(app) if session_id is not None else None
    if serve is not None:
        stopped = int(serve.call("DELETE", f"/monitor/sessions/{session_id}")["session"])
        render(app, {"session": stopped, "end_reason": "stopped"}, f"session {stopped}: stopped")
        return
    switch = switch_for(app, session_id=session_id, supervisor=supervisor_ext)
    store = app.store()
    check_monitor_stop(store, session_id, supervisor_ext)
    stopped = on_switch(switch, lambda connected: stop_monitoring(store, connected, session_id, supervisor_ext))
    render(app, {"session": stopped, "end_reason": "stopped"}, f"session {stopped}: stopped")


@monitor.command("list")
@click.option("--active", is_flag=True, help="Only sessions in progress.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_app
def monitor_list(app: AppContext, active: bool, limit: int) -> None:
    """List monitor sessions, newest first."""
    from ctl.store import queries

    with app.store().transaction() as session:
        rows = [session_row(r) for r in queries.monitor_sessions(session, active, limit)]
    render(app, rows, columns=["id", "call", "operator", "supervisor", "mode", "started_at", "ended_at", "end_reason"])


@monitor.command("log")
@click.option("--operator", "operator_ext", default=None, metavar="EXT")
@click.option("--by", "supervisor_ext", default=None, metavar="EXT")
@click.option("--since", default=None, metavar="WHEN", help="ISO date or time, e.g. 2026-11-01 or 2026-11-01T09:00.")
@json_option
@pass_app
def monitor_log(app: AppContext, operator_ext: str | None, supervisor_ext: str | None, since: str | None) -> None:
    """Every session with its mode changes, and every spy or recording ctl did not start
    (unauthorised_monitor), oldest first."""
    from ctl.services import monitoring

    with app.store().transaction() as session:
        rows = monitor_log_rows(*monitoring.monitor_log(session, operator_ext, supervisor_ext, since))
    render(app, rows, "\n".join(_log_lines(rows)))


def _log_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [] if rows else ["(none)"]
    for entry in rows:
        if entry["event"] != "session":
            lines.append(f"ALERT {entry['event']} {entry['id']}: {cell(entry['at'])} {entry['detail']} "
                         f"(call {cell(entry['call'])}; {entry['action'].replace('_', ' ')})")
            continue
        lines.append(f"session {entry['id']}: {entry['supervisor']} on {entry['operator']}'s call {entry['call']}, "
                     f"{cell(entry['started_at'])} → {cell(entry['ended_at'])} ({entry['end_reason'] or 'active'})")
        lines += [f"  {cell(change['at'])}  {change['mode']:<8} ({change['source']})" for change in entry["modes"]]
    return lines
