"""`ctl record`: start, stop, pause and resume a call's recording; list; purge old files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ctl.cli.app import ID, AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import cell, render
from ctl.cli.pbx import on_switch, switch_for
from ctl.views import recording_row

if TYPE_CHECKING:
    from ctl.services.recording import Purged, PurgeReport


@click.group(cls=CtlGroup)
def record() -> None:
    """Call recordings: start, stop, pause (a mute: one file per call), list, purge."""


@record.command("start")
@click.argument("call_id", type=ID)
@json_option
@pass_app
def record_start(app: AppContext, call_id: int) -> None:
    """Start recording CALL_ID now (a no-op if it is already being recorded)."""
    from ctl.services.recording import check_recording_start, start_recording

    store = app.store()
    switch = switch_for(app, call_id=call_id)
    result = check_recording_start(store, app.settings, switch.node, call_id)
    if result is None:
        result = on_switch(switch, lambda connected: start_recording(store, connected, app.settings, call_id))
    text = (f"call {call_id} is already being recorded ({result.state} since {cell(result.since)}): nothing done"
            if result.already else f"call {call_id}: recording to {result.path}")
    render(app, {"call": call_id, "state": result.state, "already": result.already, "path": result.path,
                 "since": result.since}, text)


def _pause_command(name: str, paused: bool, help_text: str) -> None:
    @record.command(name, help=help_text)
    @click.argument("call_id", type=ID)
    @json_option
    @pass_app
    def change(app: AppContext, call_id: int) -> None:
        from ctl.services.recording import check_recording_pause, set_recording_paused

        store = app.store()
        switch = switch_for(app, call_id=call_id)
        result = check_recording_pause(store, call_id, paused)
        if result is None:
            result = on_switch(switch, lambda connected: set_recording_paused(store, connected, call_id, paused))
        text = (f"call {call_id}: recording {'paused' if paused else 'resumed'}" if result.changed
                else f"call {call_id}: recording already {result.state}: nothing done")
        render(app, {"call": call_id, "state": result.state, "changed": result.changed}, text)


_pause_command("pause", True, "Pause the recording of CALL_ID: silence in the file until resumed.")
_pause_command("resume", False, "Resume a paused recording of CALL_ID.")


@record.command("stop")
@click.argument("call_id", type=ID)
@json_option
@pass_app
def record_stop(app: AppContext, call_id: int) -> None:
    """Stop recording CALL_ID and close its file (the call goes on)."""
    from ctl.services.recording import check_recording_stop, stop_recording

    store = app.store()
    switch = switch_for(app, call_id=call_id)
    result = check_recording_stop(store, call_id)
    if result is None:
        result = on_switch(switch, lambda connected: stop_recording(store, connected, app.settings, call_id))
    text = (f"call {call_id}: recording {result.state}" if result.changed
            else f"call {call_id}: recording already {result.state}: nothing done")
    render(app, {"call": call_id, "state": result.state, "changed": result.changed}, text)


@record.command("list")
@click.option("--active", is_flag=True, help="Only recordings in progress.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_app
def record_list(app: AppContext, active: bool, limit: int) -> None:
    """List recordings, newest first."""
    from ctl.store import queries

    with app.store().transaction() as session:
        rows = [recording_row(r) for r in queries.recordings(session, active, limit)]
    render(app, rows, columns=["call", "state", "started_at", "duration_s", "size_bytes", "complete", "path"])


@record.command("purge")
@click.option("--older-than", "days", required=True, type=click.IntRange(0, 36_500), metavar="DAYS",
              help="Delete files of recordings that ended more than DAYS days ago.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@json_option
@pass_app
def record_purge(app: AppContext, days: int, dry_run: bool) -> None:
    """Retention: delete old recording files (never one of a call in progress); rows stay, marked purged.

    Only this controller's nodes' recordings, and only regular files inside [recording] directory:
    a missing file or a refused path (a symlink, a path elsewhere) is reported and left as it is."""
    from ctl.services.recording import local_nodes, purge

    report = purge(app.store(), app.settings.recording, local_nodes(app.settings), days, dry_run)
    done = report.purged

    def rows(items: list[Purged]) -> list[dict[str, Any]]:
        return [{"call": p.call_id, "path": p.path, "size_bytes": p.size, "stopped_at": p.stopped_at,
                 **({"problem": p.problem} if p.problem else {})} for p in items]

    render(app, {"dry_run": dry_run, "recordings": rows(done), "bytes": sum(p.size or 0 for p in done),
                 "missing": rows(report.missing), "refused": rows(report.refused)},
           lambda: _print_purge(report, dry_run))


def _print_purge(report: PurgeReport, dry_run: bool) -> None:
    """What was (or would be) deleted on stdout, what was left alone on stderr, then the sum."""
    done = report.purged
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
