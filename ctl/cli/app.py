"""What every command shares: the context object, the error-reporting group, common options."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ctl.config import Settings, load_settings
from ctl.errors import CtlError

if TYPE_CHECKING:
    from ctl.store.engine import Store


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
        from ctl.store.engine import Store  # only the commands that open the store pay for SQLAlchemy

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


pass_app = click.make_pass_decorator(AppContext)

# Ids are `integer` columns: 32-bit in PostgreSQL (64-bit in SQLite). A number out of that
# range would overflow in the driver; here it is a usage error (exit 2) like any bad argument.
ID = click.IntRange(1, 2**31 - 1)


def remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    app = ctx.find_object(AppContext)
    if app is not None and value:
        app.as_json = True
    return value


# The flag lives on the AppContext (render and the error handler read it there).
json_option = click.option("--json", "as_json", is_flag=True, callback=remember_json, expose_value=False,
                           help="Print JSON instead of a table (errors too).")
