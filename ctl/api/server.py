"""The API's listeners, run by uvicorn inside serve's own event loop (no process, no thread).

ctl binds the sockets itself, so that a port in use or a socket path held by another
serve is one clear line at start-up (uvicorn would exit the process), and serve keeps its
own signal handling (uvicorn's is turned off).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import logging
import os
import socket
from collections.abc import Generator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ctl.api.auth import LocalSocket
from ctl.config import ApiSettings
from ctl.errors import ConfigError

log = logging.getLogger("ctl.api")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # serve handles SIGTERM/SIGINT and stops us


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = "in use" if error.errno == errno.EADDRINUSE else os.strerror(error.errno or 0).lower()
        raise ConfigError(f"[api] port: cannot listen on {host}:{port}: {reason}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _clear_stale(path: Path) -> None:
    """A socket file left by a serve that died is removed; one a live serve answers on is not."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise ConfigError(f"[api] socket: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise ConfigError(f"[api] socket: another ctl serve is answering on {path}")


def _unix_socket(path: Path, group: str) -> socket.socket:
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)  # born 0660: never a moment open to others
    try:
        sock.bind(str(path))
    except OSError as error:
        sock.close()
        raise ConfigError(f"[api] socket: cannot create {path}: {os.strerror(error.errno or 0).lower()}") from None
    finally:
        os.umask(old_umask)
    if group:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, OSError) as error:
            sock.close()
            path.unlink(missing_ok=True)
            raise ConfigError(f"[api] socket_group: cannot give {path} to group {group!r}: {error}") from None
    os.chmod(path, 0o660)
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ApiServer:
    def __init__(self, settings: ApiSettings, app: FastAPI) -> None:
        self.settings = settings
        self.app = app
        self._servers: list[tuple[_Server, asyncio.Task[None], socket.socket]] = []
        self.socket_path = Path(settings.socket).absolute()
        self.port: int | None = None

    async def start(self) -> None:
        tcp = _tcp_socket(self.settings.host, self.settings.port)
        try:
            unix = _unix_socket(self.socket_path, self.settings.socket_group)
        except ConfigError:
            tcp.close()
            raise
        self.port = int(tcp.getsockname()[1])
        for app, sock in ((self.app, tcp), (LocalSocket(self.app), unix)):
            config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                    server_header=False, timeout_graceful_shutdown=2)
            server = _Server(config)
            task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="ctl-api")
            self._servers.append((server, task, sock))
        while not all(server.started for server, _, _ in self._servers):
            for _, task, _ in self._servers:
                if task.done():
                    task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        log.info("API listening", extra={"fields": {"tcp": f"{self.settings.host}:{self.port}",
                                                    "socket": str(self.socket_path)}})

    async def stop(self) -> None:
        for server, _, _ in self._servers:
            server.should_exit = True
        for _, task, sock in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
            sock.close()
        self._servers = []
        self.socket_path.unlink(missing_ok=True)
