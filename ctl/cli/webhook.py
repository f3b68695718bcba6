"""`ctl webhook`: receivers of the event stream (ctl serve delivers)."""

from __future__ import annotations

import click

from ctl.cli.app import ID, AppContext, CtlGroup, json_option, pass_app
from ctl.cli.output import render


@click.group(cls=CtlGroup)
def webhook() -> None:
    """Receivers of the event stream: each event POSTed, signed, at least once, in order."""


@webhook.command("add")
@click.argument("url")
@click.option("--events", "events", default="*", show_default=True, metavar="KINDS",
              help="Comma-separated kinds or prefixes, e.g. 'call.*,monitor.*'.")
@click.option("--secret", default=None, help="The HMAC key (16+ characters); default: generated and shown once.")
@json_option
@pass_app
def webhook_add(app: AppContext, url: str, events: str, secret: str | None) -> None:
    """POST every later event matching KINDS to URL."""
    from ctl.services.webhooks import add_webhook

    with app.store().transaction() as session:
        new = add_webhook(session, url, events, secret)
    row = {"id": new.id, "url": new.url, "events": new.events, **({"secret": new.secret} if new.generated else {})}
    text = f"webhook {new.id}: {new.url} ({new.events})"
    if new.generated:
        text += f"\nsecret (shown once): {new.secret}"
    render(app, row, text)


@webhook.command("list")
@json_option
@pass_app
def webhook_list(app: AppContext) -> None:
    """List webhooks (never their secrets)."""
    from ctl.services.webhooks import list_webhooks

    with app.store().transaction() as session:
        rows = [{"id": h.id, "url": h.url, "events": h.events, "created_at": h.created_at, "cursor": h.cursor}
                for h in list_webhooks(session)]
    render(app, rows, columns=["id", "url", "events", "created_at"])


@webhook.command("remove")
@click.argument("webhook_id", type=ID)
@json_option
@pass_app
def webhook_remove(app: AppContext, webhook_id: int) -> None:
    """Stop delivering to a webhook (its pending deliveries go with it)."""
    from ctl.services.webhooks import remove_webhook

    with app.store().transaction() as session:
        url = remove_webhook(session, webhook_id).url
    render(app, {"id": webhook_id, "url": url}, f"removed webhook {webhook_id} ({url})")


@webhook.command("deliveries")
@click.option("--failed", is_flag=True, help="Only deliveries given up.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_app
def webhook_deliveries(app: AppContext, failed: bool, limit: int) -> None:
    """Deliveries, newest first: state, attempts, the receiver's last answer."""
    from ctl.services.webhooks import deliveries

    with app.store().transaction() as session:
        rows = [{"id": d.id, "webhook": d.webhook_id, "event": d.event_id, "kind": d.kind, "state": d.state,
                 "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
                 "next_at": d.next_at, "delivered_at": d.delivered_at} for d in deliveries(session, failed, limit)]
    render(app, rows, columns=["id", "webhook", "event", "kind", "state", "attempts", "last_status", "last_error"])
