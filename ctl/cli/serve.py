"""`ctl serve`: the controller."""

from __future__ import annotations

import asyncio

import click

from ctl.cli.app import AppContext, pass_app


@click.command()
@pass_app
def serve(app: AppContext) -> None:
    """Run the controller: follow the PBX, keep the store in step. Stops cleanly on SIGTERM."""
    from ctl.daemon import serve as run_daemon
    from ctl.logs import setup_logging

    settings = app.settings
    setup_logging(settings.log.level, settings.log.format)
    asyncio.run(run_daemon(settings))
