"""The CLI as a client of `ctl serve`: while serve runs, a command that acts on the PBX is sent
over serve's Unix socket — serve holds the PBX connection, so nothing is opened per command —
and its answer (or its problem) is printed exactly as the command would print it. When no serve
answers on the socket, the command does the work itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx

from ctl import errors
from ctl.cli.app import AppContext

CONNECT_TIMEOUT = 0.5
ANSWER_TIMEOUT = 60.0  # a monitor request waits for the supervisor's phone to be looked up, not answered


def _kinds() -> dict[str, type[errors.CtlError]]:
    found: dict[str, type[errors.CtlError]] = {}
    pending: list[type[errors.CtlError]] = [errors.CtlError]
    while pending:
        kind = pending.pop()
        found.setdefault(kind.kind, kind)
        pending.extend(kind.__subclasses__())
    return found


class Serve:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._http = httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://ctl/api/v1",
                                  headers={"X-Ctl-Client": "cli"},
                                  timeout=httpx.Timeout(ANSWER_TIMEOUT, connect=CONNECT_TIMEOUT))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise errors.ActionTimeout(f"ctl serve did not answer on {self.path}") from None
        except httpx.HTTPError as error:
            raise errors.SwitchUnreachable(f"ctl serve on {self.path}: {error}") from None
        finally:
            self._http.close()
        if reply.is_success:
            try:
                return reply.json()
            except ValueError:
                raise errors.CtlError(f"ctl serve answered HTTP {reply.status_code} without JSON") from None
        try:
            problem = reply.json()
            kind, detail = str(problem["kind"]), str(problem["detail"])
        except (ValueError, KeyError, TypeError):
            raise errors.CtlError(f"ctl serve answered HTTP {reply.status_code}") from None
        raise _kinds().get(kind, errors.CtlError)(detail)


def serve_of(app: AppContext) -> Serve | None:
    """serve's local API, if one answers on the configured socket (a refused connection is a
    socket left by a serve that is gone: the command then works on its own)."""
    if os.environ.get("CTL_NO_SERVE") == "1":
        return None
    path = Path(app.settings.api.socket).absolute()
    try:
        if not stat.S_ISSOCK(path.stat().st_mode):
            return None
    except OSError:
        return None
    probe = httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=CONNECT_TIMEOUT)
    try:
        probe.get("http://ctl/api/v1/health")
    except httpx.HTTPError:
        return None
    finally:
        probe.close()
    return Serve(path)
