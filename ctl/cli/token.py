"""`ctl token`: bearer tokens of serve's HTTP API, one person each."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from ctl.cli.app import ID, AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import render
from ctl.store.models import ApiToken


def _row(token: ApiToken, now: datetime) -> dict[str, Any]:
    from ctl.services.tokens import token_state

    return {"id": token.id, "extension": token.operator.extension, "name": token.name, "prefix": token.prefix,
            "state": token_state(token, now), "created_at": token.created_at, "expires_at": token.expires_at,
            "last_used_at": token.last_used_at, "revoked_at": token.revoked_at}


@click.group(cls=CtlGroup)
def token() -> None:
    """API tokens: each acts as the person it belongs to, under that person's role."""


@token.command("create")
@click.argument("extension")
@click.option("--name", default="api", show_default=True, help="What the token is for (an application, a board).")
@click.option("--expires", "lifetime", default="90d", show_default=True, metavar="90d|12h|30m|never",
              help="How long it is valid.")
@json_option
@pass_app
def token_create(app: AppContext, extension: str, name: str, lifetime: str) -> None:
    """Create a token for EXTENSION; it is printed once and never again."""
    from ctl.services.tokens import create_token, parse_lifetime

    duration = parse_lifetime(lifetime)
    with app.store().transaction() as session:
        new = create_token(session, extension, name, duration)
        row = {**_row(new.row, datetime.now(UTC)), "token": new.token}
    expiry = row["expires_at"].astimezone().strftime("%Y-%m-%d %H:%M") if row["expires_at"] else "never"
    render(app, row, f"{new.token}\n(token {row['id']} for {extension}, expires {expiry}: "
                     "shown once; ctl keeps only its hash)")


@token.command("list")
@click.option("--extension", default=None, metavar="EXT", help="Only this person's tokens.")
@json_option
@pass_app
def token_list(app: AppContext, extension: str | None) -> None:
    """List tokens (never the secrets)."""
    from ctl.services.tokens import list_tokens

    now = datetime.now(UTC)
    with app.store().transaction() as session:
        rows = [_row(t, now) for t in list_tokens(session, extension)]
    render(app, rows, columns=["id", "extension", "name", "prefix", "state", "expires_at", "last_used_at"])


@token.command("revoke")
@click.argument("token_id", type=ID)
@json_option
@pass_app
def token_revoke(app: AppContext, token_id: int) -> None:
    """Revoke token TOKEN_ID at once."""
    from ctl.services.tokens import revoke_token

    with app.store().transaction() as session:
        row = _row(revoke_token(session, token_id), datetime.now(UTC))
    render(app, row, f"revoked token {token_id} ({row['name']}, {row['extension']})")
