"""`ctl serve`'s HTTP API on real sockets, in serve's own loop: TCP with a bearer token,
the Unix socket (mode 0660) without one; a second serve on the same socket is refused."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

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


async def _next_events(lines: Any, count: int) -> list[dict[str, Any]]:
    """The next `count` events of an SSE stream (id, event, data lines; a blank line ends one)."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in lines:
        if line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and current:
            found.append(current)
            current = {}
            if len(found) == count:
                return found
    return found


async def test_the_event_stream_resumes_after_the_last_event_id(served: tuple[Settings, str]) -> None:
    from ctl.config import OperatorSettings
    from ctl.services.operators import set_status_by_hand

    settings, token = served
    store = Store(settings.database.url)
    url = f"http://127.0.0.1:{settings.api.port}/api/v1/events"
    headers = {"Authorization": f"Bearer {token}"}

    def status(value: str) -> None:
        with store.transaction() as session:
            set_status_by_hand(session, OperatorSettings(), "200", value, "lunch" if value == "break" else None, None)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream("GET", f"{url}?after=0", headers=headers) as reply:
                assert reply.status_code == 200
                assert reply.headers["content-type"].startswith("text/event-stream")
                lines = reply.aiter_lines()
                [connected] = await asyncio.wait_for(_next_events(lines, 1), 10)
                assert connected["event"] == "pbx.connected" and connected["data"]["node"] == "fs1"
                await asyncio.to_thread(status, "available")
                [first] = await asyncio.wait_for(_next_events(lines, 1), 10)
                assert first["event"] == "operator.status" and first["data"]["status"] == "available"
            # While nobody listens: two changes. The reconnect gets both, in order, nothing else.
            await asyncio.to_thread(status, "break")
            await asyncio.to_thread(status, "available")
            async with http.stream("GET", url, headers={**headers, "Last-Event-ID": str(first["id"])}) as reply:
                missed = await asyncio.wait_for(_next_events(reply.aiter_lines(), 2), 10)
            assert [(e["event"], e["data"]["status"]) for e in missed] == [("operator.status", "break"),
                                                                            ("operator.status", "available")]
            assert missed[0]["id"] > first["id"] and missed[0]["data"]["reason"] == "lunch"
            bad = await http.get(url, headers={**headers, "Last-Event-ID": "soon"})
            assert bad.status_code == 422 and bad.json()["kind"] == "invalid"
            assert (await http.get(url)).status_code == 401
    finally:
        store.dispose()


async def test_the_cli_sends_monitor_commands_to_a_running_serve(served: tuple[Settings, str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's store setting points nowhere: only serve, over its socket, can answer."""
    from click.testing import CliRunner

    from ctl.cli import cli

    settings, _ = served
    for key in [k for k in __import__("os").environ if k.startswith("CTL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CTL_API_SOCKET", settings.api.socket)
    monkeypatch.setenv("CTL_DATABASE_URL", f"sqlite:///{tmp_path / 'nowhere' / 'ctl.db'}")

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    stopped = await asyncio.to_thread(run, "monitor", "stop", "999")
    assert stopped.exit_code == 4 and stopped.output.strip() == "ctl: no monitor session with id 999"
    listen = await asyncio.to_thread(run, "monitor", "listen", "200", "--by", "200", "--json")
    assert listen.exit_code == 6 and '"error": "forbidden"' in listen.output  # the use case's own rule
    monkeypatch.setenv("CTL_NO_SERVE", "1")  # on its own, the CLI finds no store
    alone = await asyncio.to_thread(run, "monitor", "stop", "999")
    assert alone.exit_code == 5
