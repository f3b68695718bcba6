"""`ctl call`: click-to-call, the call list and the call card."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ctl.cli.app import ID, AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import render
from ctl.cli.pbx import on_switch, switch_for
from ctl.views import call_card_row, call_row

if TYPE_CHECKING:
    pass


@click.group(cls=CtlGroup)
def call() -> None:
    """Calls: place, list, show."""


@call.command("bridge")
@click.option("--operator", "operator_ext", required=True, metavar="EXT", help="The operator to ring first.")
@click.option("--to", "number", required=True, metavar="NUMBER", help="The client's number.")
@click.option("--project", "project_name", default=None, help="The project the call belongs to.")
@json_option
@pass_app
def call_bridge(app: AppContext, operator_ext: str, number: str, project_name: str | None) -> None:
    """Click-to-call: ring the operator; when they answer, dial the client and bridge them."""
    from ctl.services.calls import check_bridge_call, place_bridge_call

    store = app.store()
    switch = switch_for(app, people=[operator_ext])
    check_bridge_call(store, operator_ext, number, project_name)
    placed = on_switch(switch, lambda connected: place_bridge_call(store, connected, app.settings, operator_ext,
                                                                   number, project_name))
    render(app, {"id": placed.id, "pbx_call_id": placed.pbx_call_id, "operator": placed.operator,
                 "client": placed.number, "state": "created"},
           f"call {placed.id}: ringing operator {placed.operator}; on answer, dialing {placed.number}")


@call.command("list")
@click.option("--active", is_flag=True, help="Only calls not yet ended.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_app
def call_list(app: AppContext, active: bool, limit: int) -> None:
    """List calls, newest first."""
    from ctl.store import queries

    with app.store().transaction() as session:
        rows = [call_row(c) for c in queries.calls(session, active, limit)]
    render(app, rows, columns=["id", "state", "direction", "operator", "client", "project", "created_at", "cause"])


@call.command("show")
@click.argument("call_id", type=ID)
@json_option
@pass_app
def call_show(app: AppContext, call_id: int) -> None:
    """Show one call: times, cause, result, comment, recording."""
    from ctl.services.calls import call_card

    with app.store().transaction() as session:
        row = call_card_row(*call_card(session, call_id))
    render(app, row)


@call.command("recording")
@click.argument("call_id", type=ID)
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where to write the WAV file ('-': standard output; a directory: keep its name).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@json_option
@pass_app
def call_recording(app: AppContext, call_id: int, output: str, force: bool) -> None:
    """Export the recording of CALL_ID (only a complete one, checked against the store)."""
    from ctl.services.recording import export

    size = export(app.store(), call_id, output, force)
    if output == "-":  # the file itself went to standard output
        return
    render(app, {"call": call_id, "output": output, "size_bytes": size},
           f"call {call_id}: recording written to {output} ({size} bytes)")


@call.command("result")
@click.argument("call_id", type=ID)
@click.argument("code")
@click.option("--comment", default=None, help="A comment on the call card as well.")
@json_option
@pass_app
def call_result(app: AppContext, call_id: int, code: str, comment: str | None) -> None:
    """Save the result of CALL_ID: one of its project's result codes."""
    from ctl.services.calls import save_result
    from ctl.validation import check_text

    if comment is not None:
        comment = check_text(comment, "--comment", 4000, allow_newlines=True, required=False)
    with app.store().transaction() as session:
        saved = save_result(session, call_id, code, comment)
    status = f"; {saved.operator} is {saved.operator_status}" if saved.operator else ""
    render(app, {"id": saved.call_id, "result": saved.code, "label": saved.label, "successful": saved.successful,
                 "operator": saved.operator, "operator_status": saved.operator_status},
           f"call {saved.call_id}: result {saved.code} ({saved.label}{', successful' if saved.successful else ''})"
           f"{status}")


@call.command("comment")
@click.argument("call_id", type=ID)
@click.argument("text")
@json_option
@pass_app
def call_comment(app: AppContext, call_id: int, text: str) -> None:
    """Write a comment on the call card (replaces the previous one; "" clears it)."""
    from ctl.services.calls import set_comment
    from ctl.validation import check_text

    comment = check_text(text, "comment", 4000, allow_newlines=True, required=False) or None
    with app.store().transaction() as session:
        set_comment(session, call_id, comment)
    render(app, {"id": call_id, "comment": comment}, f"call {call_id}: comment {'saved' if comment else 'cleared'}")


@call.command("flag")
@click.argument("call_id", type=ID)
@click.option("--review/--no-review", default=True, help="Mark the call for review, or clear the mark.")
@json_option
@pass_app
def call_flag(app: AppContext, call_id: int, review: bool) -> None:
    """Mark a call for review."""
    from ctl.services.calls import set_review

    with app.store().transaction() as session:
        set_review(session, call_id, review)
    render(app, {"id": call_id, "review": review},
           f"call {call_id}: {'marked for review' if review else 'review mark cleared'}")


def _dial_command(name: str, help_text: str, check: str, service: str) -> None:
    @call.command(name, help=help_text)
    @click.argument("call_id", type=ID)
    @click.option("--from", "from_ext", required=True, metavar="EXT", help="Whose phone rings first.")
    @json_option
    @pass_app
    def dial(app: AppContext, call_id: int, from_ext: str) -> None:
        from ctl.services import calls

        store = app.store()
        switch = switch_for(app, people=[from_ext], call_id=call_id)
        getattr(calls, check)(store, call_id, from_ext)
        placed: calls.PlacedCall = on_switch(
            switch, lambda connected: getattr(calls, service)(store, connected, app.settings, call_id, from_ext))
        render(app, {"id": placed.id, "pbx_call_id": placed.pbx_call_id, "from": from_ext, "to": placed.number,
                     "state": "created"},
               f"call {placed.id}: ringing {from_ext}; on answer, dialing {placed.number}")


_dial_command("dial-client", "Call the client of call CALL_ID yourself: your phone rings first.",
              "check_dial_client", "dial_client_of")
_dial_command("dial-operator", "Call the operator of call CALL_ID (a debrief): your phone rings first.",
              "check_dial_operator", "dial_operator_of")


@call.command("hangup")
@click.argument("call_id", type=ID)
@json_option
@pass_app
def call_hangup(app: AppContext, call_id: int) -> None:
    """End call CALL_ID: every leg of it is hung up on the PBX."""
    from ctl.services.calls import check_hang_up, hang_up_call

    store = app.store()
    switch = switch_for(app, call_id=call_id)
    check_hang_up(store, call_id)
    legs = on_switch(switch, lambda connected: hang_up_call(store, connected, call_id))
    render(app, {"id": call_id, "legs": legs}, f"call {call_id}: hung up ({legs} leg{'s' if legs != 1 else ''})")
