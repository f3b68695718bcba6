"""The `ctl` command line: a thin click layer over the services, one module per command group.

Every error is one line on stderr (`ctl: <message>`) and an exit code from
ctl.errors; with --json the same error is also printed as a JSON object on
stdout so scripts can tell the kinds apart.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from ctl import __version__
from ctl.cli.app import ID, AppContext, CtlGroup
from ctl.cli.blacklist import blacklist
from ctl.cli.call import call
from ctl.cli.db import db
from ctl.cli.monitor import monitor
from ctl.cli.operator import operator
from ctl.cli.project import project
from ctl.cli.record import record
from ctl.cli.report import report
from ctl.cli.serve import serve
from ctl.cli.task import task
from ctl.cli.token import token
from ctl.cli.webhook import webhook

__all__ = ["ID", "AppContext", "CtlGroup", "cli", "main"]


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


for _command in (db, serve, operator, project, call, monitor, task, blacklist, record, report, token, webhook):
    cli.add_command(_command)


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
