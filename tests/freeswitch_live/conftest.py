"""Checks against a real FreeSWITCH running freeswitch_conf/, with sipp phones and `ctl`.

No FreeSWITCH package reaches this project's CI, and nothing here builds one: these tests
run where CTL_TEST_FREESWITCH_BIN names a FreeSWITCH 1.10 binary (built with at least
mod_sofia, mod_event_socket, mod_commands, mod_dptools, mod_dialplan_xml, mod_callcenter,
mod_sndfile, mod_tone_stream), and are reported as skipped, with that reason, where it
does not. CI's FreeSWITCH coverage is tests/protocol/ (the replayed 1.10.12 capture).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from freeswitch_sandbox import FreeswitchSandbox
from sip_peers import SippCaller, SippPhone, free_port, free_ports, register

from ctl.config import Settings
from ctl.services.directory import ResultCodeSpec, add_operator, add_project
from ctl.store.engine import Store, upgrade
from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Serve

BINARY = os.environ.get("CTL_TEST_FREESWITCH_BIN", "")
NODE = "fs-live"
PING_INTERVAL = 2  # seconds between FreeSWITCH's OPTIONS pings to the phones (30 by default)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/freeswitch_live/" in str(item.fspath):
            item.add_marker(pytest.mark.freeswitch_live)
            if not BINARY:
                item.add_marker(pytest.mark.skip(
                    reason="no real FreeSWITCH here: set CTL_TEST_FREESWITCH_BIN (CI covers FreeSWITCH "
                           "with the replayed capture in tests/protocol/)"))


@dataclass
class Live:
    sandbox: FreeswitchSandbox
    settings: dict[str, str]
    carrier_port: int

    @property
    def phones_sip(self) -> tuple[str, int]:
        return "127.0.0.1", int(self.settings["CTL_FREESWITCH_PHONES_PORT"])

    @property
    def clients_sip(self) -> tuple[str, int]:
        return "127.0.0.1", int(self.settings["CTL_FREESWITCH_CLIENTS_PORT"])

    @property
    def phone_password(self) -> str:
        return self.settings["CTL_FREESWITCH_PHONE_PASSWORD"]

    def api(self, command: str) -> str:
        """One inbound-ESL api command, answered synchronously (a test's own look at FreeSWITCH)."""
        port = int(self.settings["CTL_FREESWITCH_PORT"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            stream = sock.makefile("rb")

            def message() -> tuple[dict[str, str], bytes]:
                headers: dict[str, str] = {}
                while (line := stream.readline().decode().rstrip("\n")) != "":
                    key, _, value = line.partition(": ")
                    headers[key] = value
                length = int(headers.get("Content-Length", "0"))
                return headers, stream.read(length) if length else b""

            message()  # auth/request
            sock.sendall(f"auth {self.settings['CTL_FREESWITCH_PASSWORD']}\n\n".encode())
            headers, _ = message()
            assert headers.get("Reply-Text", "").startswith("+OK"), headers
            sock.sendall(f"api {command}\n\n".encode())
            headers, body = message()
            return body.decode(errors="replace")


@pytest.fixture(scope="session")
def freeswitch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    sandbox = FreeswitchSandbox(Path(BINARY), tmp_path_factory.mktemp("freeswitch"))
    carrier = free_port()
    settings = sandbox.start({"esl": free_port(socket.SOCK_STREAM), "outbound": free_port(socket.SOCK_STREAM),
                              "phones": free_port(), "clients": free_port(), "carrier": carrier,
                              "rtp_start": 13000, "rtp_end": 13998}, ping_interval=PING_INTERVAL)
    live = Live(sandbox, settings, carrier)
    try:
        wait_for(lambda: "ctl-phones" in live.api("sofia status"), 30, interval=0.5, message="sofia profiles up")
        yield live
    finally:
        sandbox.stop()


@dataclass
class FsPhones:
    live: Live
    workdir: Path
    started: list[SippPhone | SippCaller] = field(default_factory=list)
    registered: list[tuple[str, int]] = field(default_factory=list)

    def phone(self, extension: str, scenario: str = "answer", **options: Any) -> SippPhone:
        port, media = free_ports(2)
        phone = SippPhone(scenario, port, media, self.workdir, **options).start()
        self.started.append(phone)
        status = register(self.live.phones_sip, extension, self.live.phone_password, port)
        assert status == 200, f"REGISTER {extension} answered {status}"
        self.registered.append((extension, port))
        wait_for(lambda: "error/user_not_registered" not in self.live.api(f"sofia_contact {extension}"),
                 message=f"{extension} registered")
        return phone

    def unregister(self, extension: str, port: int) -> None:
        register(self.live.phones_sip, extension, self.live.phone_password, port, expires=0)

    def call(self, extension: str, target: str, tone: Path, digits: list[tuple[int, str]] | None = None,
             hold_ms: int = 30_000) -> SippCaller:
        port, media = free_ports(2)
        caller = SippCaller(extension, self.live.phone_password, target, self.live.phones_sip, port, media,
                            self.workdir, tone, digits or [], hold_ms, challenge=407).start()
        self.started.append(caller)
        return caller

    def inbound(self, number: str, dialed: str, tone: Path, hold_ms: int = 30_000) -> SippCaller:
        """A client calling in through the carrier's profile (no digest auth)."""
        port, media = free_ports(2)
        caller = SippCaller(number, None, dialed, self.live.clients_sip, port, media, self.workdir, tone, [],
                            hold_ms).start()
        self.started.append(caller)
        return caller

    def clients(self, scenario: str = "answer", **options: Any) -> SippPhone:
        """The carrier: the clients' gateway points at this sipp."""
        (media,) = free_ports(1)
        phone = SippPhone(scenario, self.live.carrier_port, media, self.workdir, **options).start()
        self.started.append(phone)
        return phone

    def stop(self) -> None:
        for phone in self.started:
            phone.stop()
        for extension, port in self.registered:
            self.unregister(extension, port)


@pytest.fixture
def phones(freeswitch: Live, tmp_path: Path) -> Iterator[FsPhones]:
    made = FsPhones(freeswitch, tmp_path / "phones")
    yield made
    made.stop()
    freeswitch.api("hupall NORMAL_CLEARING")
    wait_for(lambda: "0 total" in freeswitch.api("show channels count"), message="FreeSWITCH idle between tests")


def fs_environment(live: Live, url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CTL_")}
    env.update({
        "CTL_DATABASE_URL": url,
        "CTL_ASTERISK_HOST": "",
        "CTL_FREESWITCH_HOST": "127.0.0.1",
        "CTL_FREESWITCH_PORT": live.settings["CTL_FREESWITCH_PORT"],
        "CTL_FREESWITCH_PASSWORD": live.settings["CTL_FREESWITCH_PASSWORD"],
        "CTL_FREESWITCH_NODE": NODE,
        "CTL_FREESWITCH_OUTBOUND_HOST": "127.0.0.1",
        "CTL_FREESWITCH_OUTBOUND_PORT": live.settings["CTL_FREESWITCH_OUTBOUND_PORT"],
        "CTL_FREESWITCH_OUTBOUND_SECRET": live.settings["CTL_FREESWITCH_OUTBOUND_SECRET"],
        "CTL_CALLS_OPERATOR_DIAL": "user/{extension}",
        "CTL_CALLS_RING_TIMEOUT": "5",
        "CTL_RECORDING_DIRECTORY": str(live.sandbox.recordings),
        "CTL_RECORDING_PBX_DIRECTORY": str(live.sandbox.recordings),
        "CTL_LOG_FORMAT": "json",
        "CTL_LOG_LEVEL": "info",
    })
    return env


@pytest.fixture
def ctl(freeswitch: Live, tmp_path: Path) -> CtlRunner:
    """Operators 101, 102, supervisor 200, admin 201 on user/<ext>; project Sales."""
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    upgrade(url)
    store = Store(url)
    try:
        with store.transaction() as session:
            calls = Settings().calls
            for extension, name, role in (("101", "Anna Operator", "operator"), ("102", "Boris Operator", "operator"),
                                          ("200", "Sam Supervisor", "supervisor"), ("201", "Ada Admin", "admin")):
                add_operator(session, calls, extension, name, role, f"user/{extension}")
            add_project(session, "Sales", "", [ResultCodeSpec("sale", "Sale", True)], ["101", "102"])
    finally:
        store.dispose()
    return CtlRunner(fs_environment(freeswitch, url), url)


@pytest.fixture
def serve(ctl: CtlRunner, tmp_path: Path) -> Iterator[Serve]:
    daemon = Serve(ctl, tmp_path / "serve.log")
    daemon.wait_log("reconciled with the PBX", timeout=30)
    yield daemon
    code = daemon.stop()
    assert code == 0, f"ctl serve exited {code} on SIGTERM; log: {daemon.log_path.read_text()[-2000:]}"


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout
