"""`ctl serve`'s HTTP API on real sockets, in serve's own loop: TCP with a bearer token,
the Unix socket (mode 0660) without one; a second serve on the same socket is refused."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from ctl.config import Settings, load_settings
from ctl.daemon import serve
from ctl.errors import ConfigError
from ctl.services.directory import add_operator
from ctl.services.tokens import create_token
from ctl.store.engine import Store, upgrade
from tests.protocol.fake_esl import RespondingEsl
from tests.protocol.test_freeswitch_serve import _free_port


def _settings(tmp_path: Path, esl_port: int, api_port: int) -> Settings:
    return load_settings(environ={
        "CTL_DATABASE_URL": f"sqlite:///{tmp_path / 'ctl.db'}", "CTL_ASTERISK_HOST": "",
        "CTL_FREESWITCH_HOST": "127.0.0.1", "CTL_FREESWITCH_PORT": str(esl_port),
        "CTL_FREESWITCH_PASSWORD": "s3cret-for-tests", "CTL_FREESWITCH_NODE": "fs1",
        "CTL_FREESWITCH_OUTBOUND_SECRET": "outbound-secret-for-tests",
        "CTL_FREESWITCH_OUTBOUND_PORT": str(_free_port()), "CTL_CALLS_OPERATOR_DIAL": "user/{extension}",
        "CTL_RECORDING_POLICY": "never", "CTL_RECORDING_DIRECTORY": str(tmp_path / "rec"),
        "CTL_API_PORT": str(api_port), "CTL_API_SOCKET": str(tmp_path / "ctl.sock")})


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Settings, str]]:
    fake = RespondingEsl()
    settings = _settings(tmp_path, await fake.start(), _free_port())
    upgrade(settings.database.url)
    store = Store(settings.database.url)
    with store.transaction() as session:
        add_operator(session, settings.calls, "200", "Sue", "supervisor", None)
        token = create_token(session, "200", "test", timedelta(hours=1)).token
    store.dispose()
    task = asyncio.ensure_future(serve(settings))
    await fake.wait_for_command("event plain")
    socket_path = Path(settings.api.socket)
    for _ in range(200):
        if socket_path.exists():
            break
        await asyncio.sleep(0.02)
    yield settings, token
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fake.stop()


async def test_the_api_answers_over_tcp_with_a_token_and_on_the_local_socket(
        served: tuple[Settings, str]) -> None:
    settings, token = served
    base = f"http://127.0.0.1:{settings.api.port}/api/v1"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{base}/operators")).status_code == 401
        reply = await http.get(f"{base}/operators", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200 and reply.json()[0]["extension"] == "200"
        health = await http.get(f"{base}/health", headers={"Authorization": f"Bearer {token}"})
        assert health.json()["nodes"] == {"fs1": True}
    path = Path(settings.api.socket)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(path))) as local:
        reply = await local.get("http://ctl/api/v1/operators")
        assert reply.status_code == 200 and [p["extension"] for p in reply.json()] == ["200"]


async def test_a_second_serve_on_the_same_socket_or_port_is_refused(served: tuple[Settings, str],
                                                                    tmp_path: Path) -> None:
    settings, _ = served
    fake = RespondingEsl()
    port = await fake.start()
    try:
        with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1:.*in use"):
            await serve(_settings(tmp_path, port, settings.api.port))
        with pytest.raises(ConfigError, match="another ctl serve is answering"):
            await serve(_settings(tmp_path, port, _free_port()))
    finally:
        await fake.stop()
    assert Path(settings.api.socket).exists()  # the first serve's socket is left alone


async def test_a_socket_left_by_a_dead_serve_is_replaced(tmp_path: Path) -> None:
    import socket

    from ctl.api.app import create_app
    from ctl.api.server import ApiServer
    from ctl.config import ApiSettings

    path = tmp_path / "ctl.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: as after a kill -9
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    upgrade(url)
    store = Store(url)
    server = ApiServer(ApiSettings(port=_free_port(), socket=str(path)), create_app(store, Settings(), {}))
    await server.start()
    try:
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(path))) as local:
            assert (await local.get("http://ctl/api/v1/operators")).json() == []
    finally:
        await server.stop()
        store.dispose()
    assert not path.exists()
    (tmp_path / "plain").write_text("not a socket")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        plain = ApiSettings(port=_free_port(), socket=str(tmp_path / "plain"))
        await ApiServer(plain, create_app(store, Settings(), {})).start()
