"""`ctl project`: script, result codes, recording, queue and members."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ctl.cli.app import AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import cell, render
from ctl.errors import ValidationError
from ctl.views import project_row

if TYPE_CHECKING:
    pass


@click.group(cls=CtlGroup)
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
                queue: str | None, wrapup_seconds: int | None) -> None:
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
        added = project_row(add_project(session, name, script or "", specs, list(members),
                                        recording_policy or app.settings.recording.policy, stereo,
                                        record_supervisor, queue, wrapup_seconds))
    render(app, added, f"added project {added['name']} ({len(added['result_codes'])} result codes, "
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
                wrapup_default: bool, add_members: tuple[str, ...], remove_members: tuple[str, ...]) -> None:
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
        changed = set_project_recording(session, name, recording_policy, stereo, stereo_default, record_supervisor)
        if distribution:
            set_project_distribution(session, name, queue, no_queue, wrapup_seconds, wrapup_default)
        if add_members or remove_members:
            set_project_members(session, name, list(add_members), list(remove_members))
        row = project_row(changed)
    stereo_text = {None: "as [recording] stereo", True: "stereo", False: "mono"}[row["stereo"]]
    supervisor_text = "supervisor mixed in" if row["record_supervisor"] else "supervisor not recorded"
    wrapup = "default" if row["wrapup_seconds"] is None else f"{row['wrapup_seconds']} s"
    render(app, row, f"project {row['name']}: recording {row['recording']}, {stereo_text}, {supervisor_text}; "
                     f"queue {row['queue'] or '-'}, wrap-up {wrapup}; members {cell(row['members'])}")


@project.command("list")
@json_option
@pass_app
def project_list(app: AppContext) -> None:
    """List projects."""
    from ctl.services.directory import list_projects

    with app.store().transaction() as session:
        rows = [project_row(p) for p in list_projects(session)]
    render(app, rows, columns=["name", "members", "result_codes", "recording"])


@project.command("show")
@click.argument("name")
@json_option
@pass_app
def project_show(app: AppContext, name: str) -> None:
    """Show project NAME with its script and result codes."""
    from ctl.services.directory import get_project

    with app.store().transaction() as session:
        row = project_row(get_project(session, name), full=True)
    render(app, row, _project_text(row))


def _project_text(row: dict[str, Any]) -> str:
    stereo_text = {None: "default format", True: "stereo", False: "mono"}[row["stereo"]]
    supervisor = ", supervisor mixed in" if row["record_supervisor"] else ""
    lines = [f"project   {row['name']}",
             f"members   {cell(row['members'])}",
             f"recording {row['recording']} ({stereo_text}{supervisor})",
             f"queue     {row['queue'] or '-'}",
             f"wrap-up   {'default' if row['wrapup_seconds'] is None else str(row['wrapup_seconds']) + ' s'}",
             "results"]
    lines += [f"  {code['code']:<16} {code['label']}{'  (successful)' if code['successful'] else ''}"
              for code in row["result_codes"]]
    lines.append("script")
    lines += [f"  {line}" for line in (row["script"] or "-").splitlines()]
    return "\n".join(lines)
