"""`ctl db`: the store's schema."""

from __future__ import annotations

import click

from ctl.cli.app import AppContext, CtlGroup, pass_app
from ctl.store.engine import current_revision, head_revision, make_engine, safe_url, upgrade


@click.group(cls=CtlGroup)
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
