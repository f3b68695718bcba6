"""End-to-end fixtures: a real Asterisk 22 from scripts/asterisk_sandbox.py, real SIP phones
(sipp) registered with digest auth, and `ctl` run as its console script.

Everything listens on 127.0.0.1 on free ports, so an Asterisk already running on
the machine never collides. Nothing here is skipped: if the sandbox cannot be
built or started, the tests fail and say why.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asterisk_sandbox import DEFAULTS, Instance
from sip_peers import SippCaller, SippPhone, free_port, free_ports, register, secrets_of

from ctl.config import Settings
from ctl.services.directory import ResultCodeSpec, add_operator, add_project
from ctl.store.engine import Store, upgrade
from tests.conftest import REPO, wait_for

CTL = str(REPO / ".venv" / "bin" / "ctl")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Sandbox:
    instance: Instance
    settings: dict[str, str]
    recordings_dir: Path | None = None  # when not the one under the state directory

    @property
    def sip(self) -> tuple[str, int]:
        return "127.0.0.1", int(self.settings["SIP_PORT"])

    @property
    def ami_port(self) -> int:
        return int(self.settings["AMI_PORT"])

    @property
    def clients_port(self) -> int:
        return int(self.settings["CLIENTS_PORT"])

    @property
    def recordings(self) -> Path:
        return self.recordings_dir or self.instance.state / "spool" / "recordings"

    def secret(self, name: str) -> str:
        return secrets_of(self.instance.state)[name]

    def rx(self, command: str) -> str:
        return self.instance.rx(command).stdout

    def restart(self) -> None:
        self.instance.stop()
        self.instance.start(self.settings)

    def hangup_endpoint(self, endpoint: str) -> None:
        """Hang up every channel of one endpoint, as if that phone had hung up."""
        for line in self.rx("core show channels concise").splitlines():
            name = line.split("!", 1)[0]
            if name.startswith(f"PJSIP/{endpoint}-"):
                self.rx(f"channel request hangup {name}")

    def live_channels(self) -> int:
        out = self.rx("core show channels count")
        for line in out.splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        raise AssertionError(f"unexpected output: {out!r}")


def start_sandbox(state: Path, recordings: Path | None = None, **tokens: str) -> Sandbox:
    sip, ami, clients, agi = (free_port(), free_port(kind=1), free_port(), free_port(kind=1))
    rtp_start = random.randrange(40000, 58000, 200)
    settings = {**DEFAULTS, "SIP_PORT": str(sip), "AMI_PORT": str(ami), "CLIENTS_PORT": str(clients),
                "AGI_PORT": str(agi), "RTP_START": str(rtp_start), "RTP_END": str(rtp_start + 199),
                "SYSTEM_NAME": "ctl-e2e", **tokens}
    instance = Instance(state)
    instance.start(settings, recordings=recordings)
    return Sandbox(instance, settings, recordings)


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("asterisk"))
    yield sandbox
    sandbox.instance.stop()


@dataclass
class Phones:
    """Registers operator/supervisor phones and plays the clients' network, all with sipp."""

    sandbox: Sandbox
    workdir: Path
    started: list[SippPhone | SippCaller] = field(default_factory=list)
    registered: list[tuple[str, int]] = field(default_factory=list)

    def phone(self, extension: str, scenario: str = "answer", **options: Any) -> SippPhone:
        port, media = free_ports(2)
        phone = SippPhone(scenario, port, media, self.workdir, **options).start()
        self.started.append(phone)
        self.register(extension, port)
        return phone

    def register(self, extension: str, port: int) -> None:
        status = register(self.sandbox.sip, extension, self.sandbox.secret(extension), port)
        assert status == 200, f"REGISTER {extension} answered {status}"
        self.registered.append((extension, port))
        contact = f"{extension}/sip:{extension}@127.0.0.1:{port}"
        wait_for(lambda: "Avail " in self.sandbox.rx(f"pjsip show contact {contact}"),
                 message=f"phone {extension} reachable")

    def unregister(self, extension: str, port: int) -> None:
        register(self.sandbox.sip, extension, self.sandbox.secret(extension), port, expires=0)

    def call(self, extension: str, target: str, tone: Path, digits: list[tuple[int, str]] | None = None,
             hold_ms: int = 30_000) -> SippCaller:
        """`extension`'s phone dials `target` (e.g. a feature code), streaming `tone`."""
        port, media = free_ports(2)
        caller = SippCaller(extension, self.sandbox.secret(extension), target, self.sandbox.sip, port, media,
                            self.workdir, tone, digits or [], hold_ms).start()
        self.started.append(caller)
        return caller

    def inbound(self, number: str, dialed: str, tone: Path, hold_ms: int = 30_000) -> SippCaller:
        """A client calling in through the trunk (identified by address: no digest auth)."""
        port, media = free_ports(2)
        caller = SippCaller(number, None, dialed, self.sandbox.sip, port, media, self.workdir, tone, [],
                            hold_ms).start()
        self.started.append(caller)
        return caller

    def clients(self, scenario: str = "answer", **options: Any) -> SippPhone:
        (media,) = free_ports(1)
        phone = SippPhone(scenario, self.sandbox.clients_port, media, self.workdir, **options).start()
        self.started.append(phone)
        return phone

    def stop(self) -> None:
        """Stop every phone and take back its registration: the next test starts with none."""
        for phone in self.started:
            phone.stop()
        for extension, port in self.registered:
            self.unregister(extension, port)
        self.registered.clear()


@pytest.fixture
def phones(asterisk: Sandbox, tmp_path: Path) -> Iterator[Phones]:
    made = Phones(asterisk, tmp_path / "phones")
    yield made
    made.stop()
    # A stopped sipp sends no BYE: hang up what is left so the next test starts clean.
    asterisk.rx("channel request hangup all")
    wait_for(lambda: asterisk.live_channels() == 0, message="Asterisk to be idle between tests")


@dataclass
class CtlRunner:
    """Runs the installed `ctl` console script against one store and one Asterisk."""

    env: dict[str, str]
    url: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([CTL, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"ctl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def calls(self) -> list[dict[str, Any]]:
        return list(self.json("call", "list"))

    def call(self, call_id: int) -> dict[str, Any]:
        return dict(self.json("call", "show", str(call_id)))

    def wait_state(self, call_id: int, state: str, timeout: float = 15) -> dict[str, Any]:
        """Poll `ctl call show` until the call reaches `state`; return the row."""
        def reached() -> dict[str, Any] | None:
            call = self.call(call_id)
            return call if call["state"] == state else None

        return wait_for(reached, timeout, interval=0.1, message=f"call {call_id} {state}")  # type: ignore[return-value]


def ctl_environment(sandbox: Sandbox, url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CTL_")}
    env.update({
        "CTL_DATABASE_URL": url,
        "CTL_ASTERISK_HOST": "127.0.0.1",
        "CTL_ASTERISK_PORT": str(sandbox.ami_port),
        "CTL_ASTERISK_USERNAME": "ctl",
        "CTL_ASTERISK_SECRET": sandbox.secret("ami"),
        "CTL_ASTERISK_NODE": "e2e",
        "CTL_ASTERISK_RECONNECT_MAX": "2",
        "CTL_MONITOR_AGI_PORT": sandbox.settings["AGI_PORT"],
        "CTL_MONITOR_AGI_SECRET": sandbox.secret("agi"),
        # The sandbox's spool, seen by ctl on the host and by Asterisk inside its root.
        "CTL_RECORDING_DIRECTORY": str(sandbox.recordings),
        "CTL_RECORDING_PBX_DIRECTORY": "/var/spool/asterisk/recordings",
        "CTL_LOG_FORMAT": "json",
        "CTL_LOG_LEVEL": "info",
        # Each store gets its own serve API: a free port, a socket of its own.
        "CTL_API_PORT": str(free_port(socket.SOCK_STREAM)),
        "CTL_API_SOCKET": str(Path(tempfile.mkdtemp(prefix="ctl-api-")) / "ctl.sock"),
    })
    env.update(extra)
    return env


def make_ctl(sandbox: Sandbox, url: str) -> CtlRunner:
    """A migrated store for `sandbox`: operators 101 and 102, supervisor 200, admin 201, project Sales."""
    upgrade(url)
    runner = CtlRunner(ctl_environment(sandbox, url, CTL_CALLS_RING_TIMEOUT="5"), url)
    # Seeded in process (the CLI's own tests cover `ctl operator add`): saves seconds per test.
    store = Store(url)
    try:
        with store.transaction() as session:
            calls = Settings().calls
            for extension, name, role in (("101", "Anna Operator", "operator"), ("102", "Boris Operator", "operator"),
                                          ("200", "Sam Supervisor", "supervisor"), ("201", "Ada Admin", "admin")):
                add_operator(session, calls, extension, name, role, None)
            add_project(session, "Sales", "", [ResultCodeSpec("sale", "Sale", True)], ["101", "102"])
    finally:
        store.dispose()
    return runner


@pytest.fixture
def ctl(asterisk: Sandbox, tmp_path: Path) -> CtlRunner:
    return make_ctl(asterisk, f"sqlite:///{tmp_path / 'ctl.db'}")


class Serve:
    """`ctl serve` as a child process, its JSON log lines collected from a file."""

    def __init__(self, runner: CtlRunner, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen([CTL, "serve"], env=runner.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

    def lines(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"msg": line})
        return entries

    def count(self, message: str) -> int:
        return sum(1 for entry in self.lines() if entry.get("msg") == message)

    def wait_log(self, message: str, times: int = 1, timeout: float = 15) -> None:
        wait_for(lambda: self.process.poll() is None and self.count(message) >= times, timeout,
                 message=f"serve to log {message!r} x{times}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def serve(ctl: CtlRunner, tmp_path: Path) -> Iterator[Serve]:
    daemon = Serve(ctl, tmp_path / "serve.log")
    daemon.wait_log("reconciled with the PBX")
    yield daemon
    code = daemon.stop()
    assert code == 0, f"ctl serve exited {code} on SIGTERM; log: {daemon.log_path.read_text()[-2000:]}"


def open_store(runner: CtlRunner) -> Store:
    return Store(runner.url)
