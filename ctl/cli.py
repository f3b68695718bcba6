"""The `ctl` command line: a thin click layer over the services.

Every error is one line on stderr (`ctl: <message>`) and an exit code from
ctl.errors; with --json the same error is also printed as a JSON object on
stdout so scripts can tell the kinds apart.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ctl import __version__
from ctl.config import Settings, load_settings
from ctl.errors import CtlError, NotFound, ValidationError
from ctl.store.engine import Store, current_revision, head_revision, make_engine, safe_url, upgrade
from ctl.store.models import Call, MonitorSession, Operator, Project, Recording


class AppContext:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self.as_json = False  # set by --json as it is parsed, so errors can be JSON too
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def store(self) -> Store:
        return Store(self.settings.database.url)


class CtlGroup(click.Group):
    """Turns CtlError into one line and an exit code, for every subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CtlError as error:
            if _wants_json(ctx):
                click.echo(json.dumps({"error": error.kind, "message": str(error)}))
            click.echo(f"ctl: {error}", err=True)
            sys.exit(error.exit_code)


def _wants_json(ctx: click.Context) -> bool:
    app = ctx.find_object(AppContext)
    return app is not None and app.as_json


def emit(rows: Sequence[dict[str, Any]] | dict[str, Any], as_json: bool, columns: Sequence[str] = ()) -> None:
    if as_json:
        click.echo(json.dumps(rows, default=_json_default, ensure_ascii=False, indent=None))
        return
    if isinstance(rows, dict):
        width = max((len(key) for key in rows), default=0)
        for key, value in rows.items():
            click.echo(f"{key:<{width}}  {_cell(value)}")
        return
    if not rows:
        click.echo("(none)")
        return
    headers = list(columns or rows[0].keys())
    cells = [[_cell(row.get(h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


pass_app = click.make_pass_decorator(AppContext)

# Ids are `integer` columns: 32-bit in PostgreSQL (64-bit in SQLite). A number out of that
# range would overflow in the driver; here it is a usage error (exit 2) like any bad argument.
ID = click.IntRange(1, 2**31 - 1)


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    app = ctx.find_object(AppContext)
    if app is not None and value:
        app.as_json = True
    return value


json_option = click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                           help="Print JSON instead of a table (errors too).")


@click.group(cls=CtlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=None,
              help="TOML settings file (default: $CTL_CONFIG, else ./ctl.toml if present).")
@click.version_option(__version__, prog_name="ctl")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """ctl — telephony control layer over Asterisk: calls, monitoring, recording, operators."""
    # ctl's files (the SQLite store, exports) hold personal data: nobody else may read them.
    os.umask(0o077)
    ctx.obj = AppContext(config_path)


# ---------------------------------------------------------------------------
# db
# ---------------------------------------------------------------------------
@cli.group(cls=CtlGroup)
def db() -> None:
    """The SQL store's schema."""


@db.command("upgrade")
@pass_app
def db_upgrade(app: AppContext) -> None:
    """Create or migrate the store's tables to the newest schema."""
    url = app.settings.database.url
    upgrade(url)
    click.echo(f"store {safe_url(url)} is at revision {head_revision()}")


@db.command("current")
@pass_app
def db_current(app: AppContext) -> None:
    """Show the store's schema revision."""
    url = app.settings.database.url
    current = current_revision(make_engine(url))
    head = head_revision()
    click.echo(f"{safe_url(url)}: {current or 'empty'} (newest: {head})")


# ---------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------
@cli.command()
@pass_app
def serve(app: AppContext) -> None:
    """Run the controller: follow the PBX, keep the store in step. Stops cleanly on SIGTERM."""
    from ctl.daemon import serve as run_daemon
    from ctl.logs import setup_logging

    settings = app.settings
    setup_logging(settings.log.level, settings.log.format)
    asyncio.run(run_daemon(settings))


# ---------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------
def _operator_row(operator: Operator) -> dict[str, Any]:
    return {"extension": operator.extension, "name": operator.name, "role": operator.role,
            "dial_string": operator.dial_string, "status": operator.status}


@cli.group(cls=CtlGroup)
def operator() -> None:
    """Operators, supervisors, admins and owners."""


@operator.command("add")
@click.argument("extension")
@click.option("--name", required=True, help="Full name.")
@click.option("--role", default="operator", show_default=True, help="owner, admin, supervisor or operator.")
@click.option("--dial-string", default=None, help="How to ring this person (default from [calls] operator_dial).")
@json_option
@pass_app
def operator_add(app: AppContext, extension: str, name: str, role: str, dial_string: str | None,
                 as_json: bool) -> None:
    """Add a person with extension EXTENSION."""
    from ctl.services.directory import add_operator

    with app.store().transaction() as session:
        added = add_operator(session, app.settings.calls, extension, name, role, dial_string)
        row = _operator_row(added)
    if as_json:
        emit(row, True)
    else:
        click.echo(f"added {row['role']} {row['extension']} ({row['name']}), rung via {row['dial_string']}")


@operator.command("list")
@json_option
@pass_app
def operator_list(app: AppContext, as_json: bool) -> None:
    """List everyone."""
    from ctl.services.directory import list_operators

    with app.store().transaction() as session:
        rows = [_operator_row(o) for o in list_operators(session)]
    emit(rows, as_json, ["extension", "name", "role", "dial_string", "status"])


@operator.command("status")
@click.argument("extension")
@click.argument("status", required=False, metavar="[available|break|dnd]")
@click.option("--reason", default=None, help="Why a break or do-not-disturb: one of [operators] pause_reasons.")
@click.option("--by", "by_ext", default=None, metavar="EXT", help="Who sets it (a supervisor or admin for others).")
@json_option
@pass_app
def operator_status(app: AppContext, extension: str, status: str | None, reason: str | None, by_ext: str | None,
                    as_json: bool) -> None:
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
        row: dict[str, Any] = {"extension": person.extension, "status": person.status,
                               "reason": person.status_reason, "since": person.status_changed_at,
                               "changed": changed}
    if as_json:
        emit(row, True)
    else:
        note = "" if status is None or changed else " (unchanged)"
        click.echo(f"{row['extension']}: {row['status']}{' — ' + row['reason'] if row['reason'] else ''} "
                   f"since {_cell(row['since'])}{note}")


@operator.command("history")
@click.argument("extension")
@click.option("--since", "since_text", default=None, help="Only changes from this ISO date or time.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_app
def operator_history(app: AppContext, extension: str, since_text: str | None, limit: int, as_json: bool) -> None:
    """EXTENSION's status changes, newest first."""
    from ctl.services.operators import status_history

    since = _parse_since(since_text) if since_text else None
    with app.store().transaction() as session:
        rows = [{"at": c.changed_at, "from": c.from_status, "to": c.to_status, "reason": c.reason,
                 "source": c.source, "by": c.set_by, "call": c.call_id}
                for c in status_history(session, extension, since, limit)]
    emit(rows, as_json, ["at", "from", "to", "reason", "source", "by", "call"])


@operator.command("logout")
@click.argument("extension")
@click.option("--force", is_flag=True, help="Also while in a call (an admin's forced logout; the call goes on).")
@click.option("--reason", default=None, help="Why (kept in the history; default 'forced logout' with --force).")
@click.option("--by", "by_ext", default=None, metavar="EXT", help="The admin or owner logging someone else out.")
@json_option
@pass_app
def operator_logout(app: AppContext, extension: str, force: bool, reason: str | None, by_ext: str | None,
                    as_json: bool) -> None:
    """Log EXTENSION out: offline, and paused in every queue by `ctl serve`."""
    from ctl.services.operators import logout

    with app.store().transaction() as session:
        person, changed = logout(session, extension, force, reason, by_ext)
        row: dict[str, Any] = {"extension": person.extension, "status": person.status,
                               "reason": person.status_reason, "since": person.status_changed_at,
                               "changed": changed}
    if as_json:
        emit(row, True)
    else:
        click.echo(f"{row['extension']}: offline{' — ' + row['reason'] if row['reason'] else ''}"
                   f"{'' if changed else ' (unchanged)'}")


@operator.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--delimiter", default=",", show_default=True, type=click.Choice([",", ";", "\t"]),
              help="The field separator.")
@json_option
@pass_app
def operator_import(app: AppContext, csv_file: Path, delimiter: str, as_json: bool) -> None:
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
    if as_json:
        emit({"added": result.added, "memberships": result.memberships}, True)
    else:
        click.echo(f"imported {result.added} people ({result.memberships} project memberships)")


@operator.command("remove")
@click.argument("extension")
@json_option
@pass_app
def operator_remove(app: AppContext, extension: str, as_json: bool) -> None:
    """Remove the person with extension EXTENSION (their calls stay, unassigned)."""
    from ctl.services.directory import remove_operator

    with app.store().transaction() as session:
        removed = _operator_row(remove_operator(session, extension))
    if as_json:
        emit(removed, True)
    else:
        click.echo(f"removed {removed['extension']} ({removed['name']})")


# ---------------------------------------------------------------------------
# projects
# ---------------------------------------------------------------------------
def _project_row(project: Project, full: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": project.name,
        "members": [m.extension for m in project.members],
        "result_codes": [r.code for r in project.result_codes],
        "recording": project.recording_policy,
        "stereo": project.recording_stereo,
        "record_supervisor": project.recording_supervisor,
        "queue": project.queue,
        "wrapup_seconds": project.wrapup_seconds,
    }
    if full:
        row["result_codes"] = [{"code": r.code, "label": r.label, "successful": r.successful}
                               for r in project.result_codes]
        row["script"] = project.script
        row["created_at"] = project.created_at
    return row


@cli.group(cls=CtlGroup)
def project() -> None:
    """Projects: script, result codes, members."""


@project.command("add")
@click.argument("name")
@click.option("--script", default=None, help="The call script shown to operators.")
@click.option("--script-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read the script from a UTF-8 file.")
@click.option("--result", "results", multiple=True, metavar="CODE[:LABEL][:success]",
              help="A result code operators may record; repeat for several.")
@click.option("--member", "members", multiple=True, metavar="EXT", help="An operator of the project; repeatable.")
@click.option("--recording", "recording_policy", default=None, metavar="always|on-demand|never",
              help="Which calls are recorded (default: [recording] policy, itself 'always').")
@click.option("--stereo/--mono", "stereo", default=None,
              help="Record client and operator on separate channels (default: [recording] stereo).")
@click.option("--record-supervisor/--no-record-supervisor", "record_supervisor", default=False,
              help="Mix a whispering or barging supervisor into the recording (default: no).")
@click.option("--queue", default=None, metavar="NAME", help="The PBX queue whose calls are this project's.")
@click.option("--wrapup-seconds", type=int, default=None, metavar="N",
              help="Longest wrap-up after a call (default: [operators] wrapup_seconds; 0: none).")
@json_option
@pass_app
def project_add(app: AppContext, name: str, script: str | None, script_file: Path | None, results: tuple[str, ...],
                members: tuple[str, ...], recording_policy: str | None, stereo: bool | None, record_supervisor: bool,
                queue: str | None, wrapup_seconds: int | None, as_json: bool) -> None:
    """Add project NAME."""
    from ctl.services.directory import ResultCodeSpec, add_project

    if script is not None and script_file is not None:
        raise ValidationError("give --script or --script-file, not both")
    if script_file is not None:
        try:
            script = script_file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"--script-file {script_file}: not UTF-8 text") from None
    specs = [ResultCodeSpec.parse(text) for text in results]
    with app.store().transaction() as session:
        added = _project_row(add_project(session, name, script or "", specs, list(members),
                                         recording_policy or app.settings.recording.policy, stereo,
                                         record_supervisor, queue, wrapup_seconds))
    if as_json:
        emit(added, True)
    else:
        click.echo(f"added project {added['name']} ({len(added['result_codes'])} result codes, "
                   f"{len(added['members'])} members)")


@project.command("set")
@click.argument("name")
@click.option("--recording", "recording_policy", default=None, metavar="always|on-demand|never",
              help="Which calls are recorded.")
@click.option("--stereo/--mono", "stereo", default=None, help="Stereo (client left, operator right) or mono.")
@click.option("--stereo-default", is_flag=True, help="Follow the [recording] stereo setting again.")
@click.option("--record-supervisor/--no-record-supervisor", "record_supervisor", default=None,
              help="Mix a whispering or barging supervisor into the recording, or not.")
@click.option("--queue", default=None, metavar="NAME", help="The PBX queue whose calls are this project's.")
@click.option("--no-queue", is_flag=True, help="The project has no queue any more.")
@click.option("--wrapup-seconds", type=int, default=None, metavar="N", help="Longest wrap-up after a call (0: none).")
@click.option("--wrapup-default", is_flag=True, help="Follow [operators] wrapup_seconds again.")
@click.option("--add-member", "add_members", multiple=True, metavar="EXT", help="Add a member; repeatable.")
@click.option("--remove-member", "remove_members", multiple=True, metavar="EXT", help="Remove a member; repeatable.")
@json_option
@pass_app
def project_set(app: AppContext, name: str, recording_policy: str | None, stereo: bool | None, stereo_default: bool,
                record_supervisor: bool | None, queue: str | None, no_queue: bool, wrapup_seconds: int | None,
                wrapup_default: bool, add_members: tuple[str, ...], remove_members: tuple[str, ...],
                as_json: bool) -> None:
    """Change project NAME's recording, queue, wrap-up maximum or members."""
    from ctl.services.directory import set_project_distribution, set_project_members, set_project_recording

    if stereo is not None and stereo_default:
        raise ValidationError("give --stereo/--mono or --stereo-default, not both")
    if queue is not None and no_queue:
        raise ValidationError("give --queue or --no-queue, not both")
    if wrapup_seconds is not None and wrapup_default:
        raise ValidationError("give --wrapup-seconds or --wrapup-default, not both")
    recording = recording_policy is not None or stereo is not None or stereo_default or record_supervisor is not None
    distribution = queue is not None or no_queue or wrapup_seconds is not None or wrapup_default
    if not recording and not distribution and not add_members and not remove_members:
        raise ValidationError("nothing to change: give --recording, --stereo/--mono, --stereo-default, "
                              "--record-supervisor/--no-record-supervisor, --queue/--no-queue, "
                              "--wrapup-seconds/--wrapup-default, --add-member or --remove-member")
    with app.store().transaction() as session:
        project_row = set_project_recording(session, name, recording_policy, stereo, stereo_default,
                                            record_supervisor)
        if distribution:
            set_project_distribution(session, name, queue, no_queue, wrapup_seconds, wrapup_default)
        if add_members or remove_members:
            set_project_members(session, name, list(add_members), list(remove_members))
        row = _project_row(project_row)
    if as_json:
        emit(row, True)
    else:
        stereo_text = {None: "as [recording] stereo", True: "stereo", False: "mono"}[row["stereo"]]
        supervisor_text = "supervisor mixed in" if row["record_supervisor"] else "supervisor not recorded"
        wrapup = "default" if row["wrapup_seconds"] is None else f"{row['wrapup_seconds']} s"
        click.echo(f"project {row['name']}: recording {row['recording']}, {stereo_text}, {supervisor_text}; "
                   f"queue {row['queue'] or '-'}, wrap-up {wrapup}; members {_cell(row['members'])}")


@project.command("list")
@json_option
@pass_app
def project_list(app: AppContext, as_json: bool) -> None:
    """List projects."""
    from ctl.services.directory import list_projects

    with app.store().transaction() as session:
        rows = [_project_row(p) for p in list_projects(session)]
    emit(rows, as_json, ["name", "members", "result_codes", "recording"])


@project.command("show")
@click.argument("name")
@json_option
@pass_app
def project_show(app: AppContext, name: str, as_json: bool) -> None:
    """Show project NAME with its script and result codes."""
    from ctl.services.directory import get_project

    with app.store().transaction() as session:
        row = _project_row(get_project(session, name), full=True)
    if as_json:
        emit(row, True)
        return
    click.echo(f"project   {row['name']}")
    click.echo(f"members   {_cell(row['members'])}")
    stereo_text = {None: "default format", True: "stereo", False: "mono"}[row["stereo"]]
    click.echo(f"recording {row['recording']} ({stereo_text}"
               f"{', supervisor mixed in' if row['record_supervisor'] else ''})")
    click.echo(f"queue     {row['queue'] or '-'}")
    click.echo(f"wrap-up   {'default' if row['wrapup_seconds'] is None else str(row['wrapup_seconds']) + ' s'}")
    click.echo("results")
    for code in row["result_codes"]:
        click.echo(f"  {code['code']:<16} {code['label']}{'  (successful)' if code['successful'] else ''}")
    click.echo("script")
    for line in (row["script"] or "-").splitlines():
        click.echo(f"  {line}")


# ---------------------------------------------------------------------------
# calls
# ---------------------------------------------------------------------------
def _call_row(call: Call, full: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": call.id,
        "state": call.state,
        "direction": call.direction,
        "operator": call.operator.extension if call.operator else None,
        "client": call.client_number,
        "project": call.project.name if call.project else None,
        "created_at": call.created_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "cause": call.hangup_cause,
    }
    if full:
        row.update({
            "node": call.node,
            "pbx_call_id": call.pbx_call_id,
            "bridged_at": call.bridged_at,
            "cause_code": call.hangup_cause_code,
            "duration_s": round((call.ended_at - call.answered_at).total_seconds(), 1)
            if call.ended_at and call.answered_at else None,
            "result": call.result,
            "comment": call.comment,
            "review": call.review,
            "recording": None,  # the recording's path, filled in by `call show` from its row
        })
    return row


def _recording_row(rec: Recording) -> dict[str, Any]:
    return {
        "call": rec.call_id,
        "state": rec.state,
        "path": rec.path,
        "stereo": rec.stereo,
        "source": rec.source,
        "started_at": rec.started_at,
        "stopped_at": rec.stopped_at,
        "stop_reason": rec.stop_reason,
        "size_bytes": rec.size_bytes,
        "duration_s": None if rec.duration_ms is None else rec.duration_ms / 1000,
        "complete": rec.complete,
        "problem": rec.problem,
        "purged_at": rec.purged_at,
        "pauses": [{"paused_at": p.paused_at, "resumed_at": p.resumed_at, "source": p.source} for p in rec.pauses],
    }


@cli.group(cls=CtlGroup)
def call() -> None:
    """Calls: place, list, show."""


@call.command("bridge")
@click.option("--operator", "operator_ext", required=True, metavar="EXT", help="The operator to ring first.")
@click.option("--to", "number", required=True, metavar="NUMBER", help="The client's number.")
@click.option("--project", "project_name", default=None, help="The project the call belongs to.")
@json_option
@pass_app
def call_bridge(app: AppContext, operator_ext: str, number: str, project_name: str | None, as_json: bool) -> None:
    """Click-to-call: ring the operator; when they answer, dial the client and bridge them."""
    from ctl.services.calls import place_bridge_call

    placed = asyncio.run(place_bridge_call(app.store(), _switch(app, people=[operator_ext]), app.settings,
                                           operator_ext, number,
                                           project_name))
    if as_json:
        emit({"id": placed.id, "pbx_call_id": placed.pbx_call_id, "operator": placed.operator,
              "client": placed.number, "state": "created"}, True)
    else:
        click.echo(f"call {placed.id}: ringing operator {placed.operator}; on answer, dialing {placed.number}")


@call.command("list")
@click.option("--active", is_flag=True, help="Only calls not yet ended.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_app
def call_list(app: AppContext, active: bool, limit: int, as_json: bool) -> None:
    """List calls, newest first."""
    query = select(Call).options(selectinload(Call.operator), selectinload(Call.project))
    if active:
        query = query.where(Call.state != "ended")
    query = query.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit)
    with app.store().transaction() as session:
        rows = [_call_row(c) for c in session.scalars(query)]
    emit(rows, as_json, ["id", "state", "direction", "operator", "client", "project", "created_at", "cause"])


@call.command("show")
@click.argument("call_id", type=ID)
@json_option
@pass_app
def call_show(app: AppContext, call_id: int, as_json: bool) -> None:
    """Show one call: times, cause, result, comment, recording."""
    with app.store().transaction() as session:
        found = session.get(Call, call_id, options=[selectinload(Call.operator), selectinload(Call.project)])
        if found is None:
            raise NotFound(f"no call with id {call_id}")
        row = _call_row(found, full=True)
        recording = session.scalar(select(Recording).where(Recording.call_id == call_id)
                                   .options(selectinload(Recording.pauses)))
        if recording is not None:
            details = _recording_row(recording)
            row.update({"recording": details["path"], "recording_state": details["state"],
                        "recording_complete": details["complete"], "recording_duration_s": details["duration_s"],
                        "recording_pauses": len(details["pauses"])})
    emit(row, as_json)


@call.command("recording")
@click.argument("call_id", type=ID)
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where to write the WAV file ('-': standard output; a directory: keep its name).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@json_option
@pass_app
def call_recording(app: AppContext, call_id: int, output: str, force: bool, as_json: bool) -> None:
    """Export the recording of CALL_ID (only a complete one, checked against the store)."""
    from ctl.services.recording import export

    size = export(app.store(), call_id, output, force)
    if output == "-":
        return
    if as_json:
        emit({"call": call_id, "output": output, "size_bytes": size}, True)
    else:
        click.echo(f"call {call_id}: recording written to {output} ({size} bytes)", err=False)


@call.command("result")
@click.argument("call_id", type=ID)
@click.argument("code")
@click.option("--comment", default=None, help="A comment on the call card as well.")
@json_option
@pass_app
def call_result(app: AppContext, call_id: int, code: str, comment: str | None, as_json: bool) -> None:
    """Save the result of CALL_ID: one of its project's result codes."""
    from ctl.services.calls import save_result
    from ctl.validation import check_text

    if comment is not None:
        comment = check_text(comment, "--comment", 4000, allow_newlines=True, required=False)
    with app.store().transaction() as session:
        saved = save_result(session, call_id, code, comment)
    if as_json:
        emit({"id": saved.call_id, "result": saved.code, "label": saved.label, "successful": saved.successful,
              "operator": saved.operator, "operator_status": saved.operator_status}, True)
    else:
        status = f"; {saved.operator} is {saved.operator_status}" if saved.operator else ""
        click.echo(f"call {saved.call_id}: result {saved.code} ({saved.label}"
                   f"{', successful' if saved.successful else ''}){status}")


@call.command("comment")
@click.argument("call_id", type=ID)
@click.argument("text")
@json_option
@pass_app
def call_comment(app: AppContext, call_id: int, text: str, as_json: bool) -> None:
    """Write a comment on the call card (replaces the previous one; "" clears it)."""
    from ctl.services.calls import get_call
    from ctl.validation import check_text

    comment = check_text(text, "comment", 4000, allow_newlines=True, required=False) or None
    with app.store().transaction() as session:
        get_call(session, call_id).comment = comment
    if as_json:
        emit({"id": call_id, "comment": comment}, True)
    else:
        click.echo(f"call {call_id}: comment {'saved' if comment else 'cleared'}")


@call.command("flag")
@click.argument("call_id", type=ID)
@click.option("--review/--no-review", default=True, help="Mark the call for review, or clear the mark.")
@json_option
@pass_app
def call_flag(app: AppContext, call_id: int, review: bool, as_json: bool) -> None:
    """Mark a call for review."""
    from ctl.services.calls import get_call

    with app.store().transaction() as session:
        get_call(session, call_id).review = review
    if as_json:
        emit({"id": call_id, "review": review}, True)
    else:
        click.echo(f"call {call_id}: {'marked for review' if review else 'review mark cleared'}")


def _dial_command(name: str, help_text: str, service: str) -> None:
    @call.command(name, help=help_text)
    @click.argument("call_id", type=ID)
    @click.option("--from", "from_ext", required=True, metavar="EXT", help="Whose phone rings first.")
    @json_option
    @pass_app
    def dial(app: AppContext, call_id: int, from_ext: str, as_json: bool) -> None:
        from ctl.services import calls

        placed = asyncio.run(getattr(calls, service)(app.store(), _switch(app, people=[from_ext], call_id=call_id),
                                                     app.settings, call_id, from_ext))
        if as_json:
            emit({"id": placed.id, "pbx_call_id": placed.pbx_call_id, "from": from_ext, "to": placed.number,
                  "state": "created"}, True)
        else:
            click.echo(f"call {placed.id}: ringing {from_ext}; on answer, dialing {placed.number}")


_dial_command("dial-client", "Call the client of call CALL_ID yourself: your phone rings first.", "dial_client_of")
_dial_command("dial-operator", "Call the operator of call CALL_ID (a debrief): your phone rings first.",
              "dial_operator_of")


# ---------------------------------------------------------------------------
# monitoring
# ---------------------------------------------------------------------------
def _session_row(row: MonitorSession) -> dict[str, Any]:
    return {
        "id": row.id,
        "call": row.call_id,
        "operator": row.operator.extension if row.operator else None,
        "supervisor": row.supervisor.extension if row.supervisor else None,
        "mode": row.mode,
        "follow": row.follow,
        "started_at": row.started_at,
        "attached_at": row.attached_at,
        "ended_at": row.ended_at,
        "end_reason": row.end_reason,
    }


def _switch(app: AppContext, *, people: Sequence[str] = (), call_id: int | None = None,
            session_id: int | None = None, supervisor: str | None = None) -> Any:
    """The adapter of the PBX the request is about: the people's phones (their dial strings
    name the PBX; they must all be on one), else the call's or the session's node, else the
    first configured PBX. Unknown names are left to the service, which refuses them."""
    from ctl.pbx import configured_nodes, make_switch

    settings = app.settings
    store = app.store()
    try:
        node = _node_of_request(store, settings, people, call_id, session_id, supervisor)
    finally:
        store.dispose()
    # A row of a node this controller does not drive: the first PBX, and the service's own
    # checks (the call's state, its channels) say what is wrong.
    return make_switch(settings, node if node in configured_nodes(settings) else None)


def _node_of_request(store: Store, settings: Settings, people: Sequence[str], call_id: int | None,
                     session_id: int | None, supervisor: str | None) -> str | None:
    from ctl.errors import DomainError
    from ctl.pbx import node_of_dial_string
    from ctl.store.models import MonitorSession

    with store.transaction() as session:
        nodes = {}
        for extension in people:
            person = session.scalar(select(Operator).where(Operator.extension == extension.strip()))
            if person is not None:
                nodes[person.extension] = node_of_dial_string(settings, person.dial_string)
        if len(set(nodes.values())) > 1:
            raise DomainError("these phones are on different PBXs: "
                              + ", ".join(f"{ext} on {where}" for ext, where in nodes.items()))
        if nodes:
            return next(iter(nodes.values()))
        if call_id is not None:
            row = session.get(Call, call_id)
            return row.node if row is not None else None
        if session_id is not None or supervisor is not None:
            query = select(MonitorSession.node)
            if session_id is not None:
                query = query.where(MonitorSession.id == session_id)
            else:
                query = query.join(Operator, Operator.id == MonitorSession.supervisor_id).where(
                    Operator.extension == (supervisor or "").strip(), MonitorSession.ended_at.is_(None))
            return session.scalar(query.limit(1))
    return None


@cli.group(cls=CtlGroup)
def monitor() -> None:
    """Listen, whisper or barge into an operator's call (one monitor per call)."""


def _start_command(mode_name: str, help_text: str) -> None:
    @monitor.command(mode_name, help=help_text)
    @click.argument("operator_ext", metavar="OPERATOR_EXT")
    @click.option("--by", "supervisor_ext", required=True, metavar="EXT", help="The supervisor, rung first.")
    @click.option("--follow", is_flag=True, help="Stay on when the call ends and join the operator's next call.")
    @json_option
    @pass_app
    def start(app: AppContext, operator_ext: str, supervisor_ext: str, follow: bool, as_json: bool) -> None:
        from ctl.services.monitoring import parse_mode, start_from_cli

        settings = app.settings
        switch = _switch(app, people=[operator_ext, supervisor_ext])
        session_id = asyncio.run(start_from_cli(app.store(), switch, settings, parse_mode(mode_name),
                                                operator_ext, supervisor_ext, follow=follow))
        if as_json:
            emit({"session": session_id, "mode": mode_name, "operator": operator_ext, "by": supervisor_ext,
                  "follow": follow}, True)
        else:
            click.echo(f"session {session_id}: ringing {supervisor_ext}; "
                       f"on answer, {mode_name} on {operator_ext}'s call")


_start_command("listen", "Hear the operator and the client; nobody hears you.")
_start_command("whisper", "Hear both; only the operator hears you.")
_start_command("barge", "Hear both; both hear you.")


@monitor.command("mode")
@click.argument("session_id", type=ID, metavar="SESSION")
@click.argument("mode_name", metavar="listen|whisper|barge")
@json_option
@pass_app
def monitor_mode(app: AppContext, session_id: int, mode_name: str, as_json: bool) -> None:
    """Switch a live session's mode; the supervisor's call stays up."""
    from ctl.services.monitoring import change_mode_from_cli, parse_mode

    mode = parse_mode(mode_name)
    asyncio.run(change_mode_from_cli(app.store(), _switch(app, session_id=session_id), app.settings, session_id,
                                     mode))
    if as_json:
        emit({"session": session_id, "mode": mode.value}, True)
    else:
        click.echo(f"session {session_id}: {mode.value}")


@monitor.command("stop")
@click.argument("session_id", type=ID, required=False, metavar="[SESSION]")
@click.option("--by", "supervisor_ext", default=None, metavar="EXT", help="Stop this supervisor's active session.")
@json_option
@pass_app
def monitor_stop(app: AppContext, session_id: int | None, supervisor_ext: str | None, as_json: bool) -> None:
    """End a session: the supervisor's leg is hung up."""
    from ctl.services.monitoring import stop_from_cli

    if (session_id is None) == (supervisor_ext is None):
        raise ValidationError("give a SESSION or --by EXT (one of them)")
    switch = _switch(app, session_id=session_id, supervisor=supervisor_ext)
    stopped = asyncio.run(stop_from_cli(app.store(), switch, session_id, supervisor_ext))
    if as_json:
        emit({"session": stopped, "end_reason": "stopped"}, True)
    else:
        click.echo(f"session {stopped}: stopped")


def _sessions_query() -> Any:
    return select(MonitorSession).options(selectinload(MonitorSession.operator),
                                          selectinload(MonitorSession.supervisor),
                                          selectinload(MonitorSession.mode_changes))


@monitor.command("list")
@click.option("--active", is_flag=True, help="Only sessions in progress.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_app
def monitor_list(app: AppContext, active: bool, limit: int, as_json: bool) -> None:
    """List monitor sessions, newest first."""
    query = _sessions_query()
    if active:
        query = query.where(MonitorSession.ended_at.is_(None))
    query = query.order_by(MonitorSession.started_at.desc(), MonitorSession.id.desc()).limit(limit)
    with app.store().transaction() as session:
        rows = [_session_row(r) for r in session.scalars(query)]
    emit(rows, as_json, ["id", "call", "operator", "supervisor", "mode", "started_at", "ended_at", "end_reason"])


@monitor.command("log")
@click.option("--operator", "operator_ext", default=None, metavar="EXT")
@click.option("--by", "supervisor_ext", default=None, metavar="EXT")
@click.option("--since", default=None, metavar="WHEN", help="ISO date or time, e.g. 2026-11-01 or 2026-11-01T09:00.")
@json_option
@pass_app
def monitor_log(app: AppContext, operator_ext: str | None, supervisor_ext: str | None, since: str | None,
                as_json: bool) -> None:
    """Every session with its mode changes, and every spy or recording ctl did not start
    (unauthorised_monitor), oldest first."""
    from ctl.services.directory import get_operator
    from ctl.services.security import unauthorised_events

    query = _sessions_query()
    with app.store().transaction() as session:
        operator_id = get_operator(session, operator_ext).id if operator_ext is not None else None
        if operator_id is not None:
            query = query.where(MonitorSession.operator_id == operator_id)
        if supervisor_ext is not None:
            query = query.where(MonitorSession.supervisor_id == get_operator(session, supervisor_ext).id)
        since_at = _parse_since(since) if since is not None else None
        if since_at is not None:
            query = query.where(MonitorSession.started_at >= since_at)
        rows = []
        for row in session.scalars(query.order_by(MonitorSession.started_at, MonitorSession.id)):
            entry = {"event": "session", **_session_row(row)}
            entry["modes"] = [{"mode": c.mode, "at": c.changed_at, "source": c.source} for c in row.mode_changes]
            rows.append(entry)
        # Nobody is "by" a spy ctl did not start: --by shows sessions only.
        alerts = [] if supervisor_ext is not None else unauthorised_events(session, since_at, operator_id)
    rows = sorted(rows + alerts, key=lambda entry: entry.get("started_at") or entry["at"])
    if as_json:
        emit(rows, True)
        return
    if not rows:
        click.echo("(none)")
    for entry in rows:
        if entry["event"] != "session":
            click.echo(f"ALERT {entry['event']} {entry['id']}: {_cell(entry['at'])} {entry['detail']} "
                       f"(call {_cell(entry['call'])}; {entry['action'].replace('_', ' ')})")
            continue
        click.echo(f"session {entry['id']}: {entry['supervisor']} on {entry['operator']}'s call {entry['call']}, "
                   f"{_cell(entry['started_at'])} → {_cell(entry['ended_at'])} ({entry['end_reason'] or 'active'})")
        for change in entry["modes"]:
            click.echo(f"  {_cell(change['at'])}  {change['mode']:<8} ({change['source']})")


def _parse_since(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"--since: {text!r} is not an ISO date or time (e.g. 2026-11-01T09:00)") from None
    return parsed if parsed.tzinfo else parsed.astimezone()


# ---------------------------------------------------------------------------
# tasks
# ---------------------------------------------------------------------------
def _task_row(task: Any) -> dict[str, Any]:
    return {"id": task.id, "number": task.number, "due_at": task.due_at, "auto": task.auto, "state": task.state,
            "project": task.project.name if task.project else None,
            "assignee": task.assignee.extension if task.assignee else None,
            "source_call": task.source_call_id, "call": task.call_id,
            "placed_to": task.placed_to.extension if task.placed_to else None, "attempts": task.attempts,
            "reminded_at": task.reminded_at, "note": task.note, "outcome": task.outcome}


TASK_COLUMNS = ["id", "due_at", "state", "auto", "number", "project", "assignee", "attempts", "outcome"]


@cli.group(cls=CtlGroup)
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
             assignee: str | None, auto: bool, project_name: str | None, note: str | None, by_ext: str | None,
             as_json: bool) -> None:
    """Add a callback task."""
    from ctl.services.directory import get_operator
    from ctl.services.tasks import add_task, parse_when, zone

    now = datetime.now(UTC)
    due = parse_when(at_text, now, zone(tz_name))
    with app.store().transaction() as session:
        if by_ext is not None:
            get_operator(session, by_ext)
        row = _task_row(add_task(session, due=due, call_id=call_id, number=number, assignee=assignee, auto=auto,
                                 project_name=project_name, note=note, by=by_ext, now=now))
    if as_json:
        emit(row, True)
    else:
        click.echo(f"task {row['id']}: {'automatic ' if row['auto'] else ''}callback to {row['number']} "
                   f"at {_cell(row['due_at'])}{' for ' + row['assignee'] if row['assignee'] else ''}")


@task.command("list")
@click.option("--state", default=None, help="open, pending, placing, done, overdue or cancelled.")
@click.option("--assignee", default=None, metavar="EXT")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_app
def task_list(app: AppContext, state: str | None, assignee: str | None, limit: int, as_json: bool) -> None:
    """List tasks, soonest first."""
    from ctl.services.tasks import list_tasks

    with app.store().transaction() as session:
        rows = [_task_row(t) for t in list_tasks(session, state, assignee, limit)]
    emit(rows, as_json, TASK_COLUMNS)


@task.command("due")
@click.option("--assignee", default=None, metavar="EXT")
@json_option
@pass_app
def task_due(app: AppContext, assignee: str | None, as_json: bool) -> None:
    """Manual callbacks due within [tasks] remind_minutes, and overdue ones."""
    from ctl.services.tasks import due_tasks

    with app.store().transaction() as session:
        rows = [_task_row(t) for t in due_tasks(session, app.settings.tasks, datetime.now(UTC), assignee)]
    emit(rows, as_json, TASK_COLUMNS)


def _close_command(name: str, state: str, help_text: str) -> None:
    @task.command(name, help=help_text)
    @click.argument("task_id", type=ID)
    @click.option("--comment", default=None, help="Why, or what came of it.")
    @json_option
    @pass_app
    def close(app: AppContext, task_id: int, comment: str | None, as_json: bool) -> None:
        from ctl.services.tasks import close_task

        with app.store().transaction() as session:
            row = _task_row(close_task(session, task_id, state, comment))
        if as_json:
            emit(row, True)
        else:
            click.echo(f"task {row['id']}: {row['state']}")


_close_command("done", "done", "Mark TASK_ID done (the client was called back).")
_close_command("cancel", "cancelled", "Cancel TASK_ID.")


# ---------------------------------------------------------------------------
# blacklist
# ---------------------------------------------------------------------------
@cli.group(cls=CtlGroup)
def blacklist() -> None:
    """Client numbers that no originate path dials."""


@blacklist.command("add")
@click.argument("number")
@click.option("--reason", default=None, help="Why (shown when a call is refused).")
@json_option
@pass_app
def blacklist_add_command(app: AppContext, number: str, reason: str | None, as_json: bool) -> None:
    """Never dial NUMBER."""
    from ctl.services.operators import blacklist_add

    with app.store().transaction() as session:
        row = blacklist_add(session, number, reason)
        added = {"number": row.number, "reason": row.reason, "added_at": row.added_at}
    if as_json:
        emit(added, True)
    else:
        click.echo(f"blacklisted {added['number']}")


@blacklist.command("remove")
@click.argument("number")
@json_option
@pass_app
def blacklist_remove_command(app: AppContext, number: str, as_json: bool) -> None:
    """Allow NUMBER again."""
    from ctl.services.operators import blacklist_remove

    with app.store().transaction() as session:
        removed = blacklist_remove(session, number).number
    if as_json:
        emit({"number": removed}, True)
    else:
        click.echo(f"removed {removed} from the blacklist")


@blacklist.command("list")
@json_option
@pass_app
def blacklist_list_command(app: AppContext, as_json: bool) -> None:
    """List blacklisted numbers."""
    from ctl.services.operators import blacklist_list

    with app.store().transaction() as session:
        rows = [{"number": r.number, "reason": r.reason, "added_at": r.added_at} for r in blacklist_list(session)]
    emit(rows, as_json, ["number", "reason", "added_at"])


# ---------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------
@cli.group(cls=CtlGroup)
def record() -> None:
    """Call recordings: start, stop, pause (a mute: one file per call), list, purge."""


@record.command("start")
@click.argument("call_id", type=ID)
@json_option
@pass_app
def record_start(app: AppContext, call_id: int, as_json: bool) -> None:
    """Start recording CALL_ID now (a no-op if it is already being recorded)."""
    from ctl.services.recording import start_from_cli

    result = asyncio.run(start_from_cli(app.store(), _switch(app, call_id=call_id), app.settings, call_id))
    if as_json:
        emit({"call": call_id, "state": result.state, "already": result.already, "path": result.path,
              "since": result.since}, True)
    elif result.already:
        click.echo(f"call {call_id} is already being recorded ({result.state} since {_cell(result.since)}): "
                   "nothing done")
    else:
        click.echo(f"call {call_id}: recording to {result.path}")


def _pause_command(name: str, paused: bool, help_text: str) -> None:
    @record.command(name, help=help_text)
    @click.argument("call_id", type=ID)
    @json_option
    @pass_app
    def change(app: AppContext, call_id: int, as_json: bool) -> None:
        from ctl.services.recording import set_paused_from_cli

        result = asyncio.run(set_paused_from_cli(app.store(), _switch(app, call_id=call_id), call_id, paused))
        if as_json:
            emit({"call": call_id, "state": result.state, "changed": result.changed}, True)
        elif result.changed:
            click.echo(f"call {call_id}: recording {'paused' if paused else 'resumed'}")
        else:
            click.echo(f"call {call_id}: recording already {result.state}: nothing done")


_pause_command("pause", True, "Pause the recording of CALL_ID: silence in the file until resumed.")
_pause_command("resume", False, "Resume a paused recording of CALL_ID.")


@record.command("stop")
@click.argument("call_id", type=ID)
@json_option
@pass_app
def record_stop(app: AppContext, call_id: int, as_json: bool) -> None:
    """Stop recording CALL_ID and close its file (the call goes on)."""
    from ctl.services.recording import stop_from_cli

    result = asyncio.run(stop_from_cli(app.store(), _switch(app, call_id=call_id), app.settings, call_id))
    if as_json:
        emit({"call": call_id, "state": result.state, "changed": result.changed}, True)
    elif result.changed:
        click.echo(f"call {call_id}: recording {result.state}")
    else:
        click.echo(f"call {call_id}: recording already {result.state}: nothing done")


@record.command("list")
@click.option("--active", is_flag=True, help="Only recordings in progress.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_app
def record_list(app: AppContext, active: bool, limit: int, as_json: bool) -> None:
    """List recordings, newest first."""
    query = select(Recording).options(selectinload(Recording.pauses))
    if active:
        query = query.where(Recording.state.in_(("starting", "recording", "paused")))
    query = query.order_by(Recording.requested_at.desc(), Recording.id.desc()).limit(limit)
    with app.store().transaction() as session:
        rows = [_recording_row(r) for r in session.scalars(query)]
    emit(rows, as_json, ["call", "state", "started_at", "duration_s", "size_bytes", "complete", "path"])


@record.command("purge")
@click.option("--older-than", "days", required=True, type=click.IntRange(0, 36_500), metavar="DAYS",
              help="Delete files of recordings that ended more than DAYS days ago.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@json_option
@pass_app
def record_purge(app: AppContext, days: int, dry_run: bool, as_json: bool) -> None:
    """Retention: delete old recording files (never one of a call in progress); rows stay, marked purged.

    Only this controller's nodes' recordings, and only regular files inside [recording] directory:
    a missing file or a refused path (a symlink, a path elsewhere) is reported and left as it is."""
    from ctl.services.recording import Purged, local_nodes, purge

    report = purge(app.store(), app.settings.recording, local_nodes(app.settings), days, dry_run)
    done = report.purged

    def rows(items: list[Purged]) -> list[dict[str, Any]]:
        return [{"call": p.call_id, "path": p.path, "size_bytes": p.size, "stopped_at": p.stopped_at,
                 **({"problem": p.problem} if p.problem else {})} for p in items]

    if as_json:
        emit({"dry_run": dry_run, "recordings": rows(done), "bytes": sum(p.size or 0 for p in done),
              "missing": rows(report.missing), "refused": rows(report.refused)}, True)
        return
    for item in done:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {item.path} (call {item.call_id})")
    for item in report.missing:
        click.echo(f"ctl: warning: {item.path} (call {item.call_id}) is missing: not marked purged", err=True)
    for item in report.refused:
        click.echo(f"ctl: warning: {item.path} (call {item.call_id}) refused: {item.problem}", err=True)
    left = [f"{len(found)} {kind}" for kind, found in (("missing", report.missing), ("refused", report.refused))
            if found]
    click.echo(f"{len(done)} recordings, {sum(p.size or 0 for p in done)} bytes"
               f"{' would be' if dry_run else ''} purged{'; ' + ', '.join(left) + ' left alone' if left else ''}")


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------
@cli.group(cls=CtlGroup)
def report() -> None:
    """Figures per day in a time zone, computed by the database: occupancy, calls, results, monitoring."""


def _remember_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    _remember_json(ctx, param, value == "json")
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
        from ctl.report_output import render
        from ctl.services.reports import build, make_period, resolve_filters

        if clients and name != "results":
            raise ValidationError("--clients applies to the results report only")
        now = datetime.now(UTC)
        period = make_period(first, last, tz_name, now)
        with app.store().transaction() as session:
            filters = resolve_filters(session, project_name, operator_ext)
            built = build(session, name, period, filters, now, clients=clients)
        click.echo(render(built, fmt))


for _name in ("occupancy", "calls", "results", "monitoring"):
    _report_command(_name)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: usage errors too are one line (`ctl: …`, exit 2)."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="ctl", standalone_mode=False)
    except click.UsageError as error:
        hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        click.echo(f"ctl: {error.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("ctl: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)

