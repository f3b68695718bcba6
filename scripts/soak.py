#!/usr/bin/env python3
"""Soak: `ctl serve` on a real Asterisk under mixed load, AMI drops and its own restarts.

    .venv/bin/python scripts/soak.py --minutes 60      the long run
    .venv/bin/python scripts/soak.py --minutes 3       what CI runs (tests/e2e/test_soak.py)

For the whole run, operators 101-104 (sipp phones) get click-to-call calls to a client
network (sipp) that talks a few seconds and hangs up; supervisor 200 listens to some of
them; every call is recorded (policy always). ctl serve reaches AMI through a proxy this
script controls: every --drop-every seconds the proxy cuts serve's AMI connection, and
every --restart-every seconds serve is stopped (SIGTERM or, every other time, SIGKILL) and
started again. At the end, with serve reconciled and stopped, the store must show:
  - every call `ctl call bridge` placed, exactly once, ended (0 lost call rows);
  - no monitor session and no recording left active;
  - serve's memory flat: its last resident size within 25 % (+8 MB) of the size it had
    once warmed up, in the longest-lived serve process.
It prints a JSON summary and exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asterisk_sandbox import DEFAULTS, Instance
from sip_peers import SippPhone, free_port, free_ports, register, secrets_of

REPO = Path(__file__).resolve().parent.parent
CTL = str(REPO / ".venv" / "bin" / "ctl")
OPERATORS = ("101", "102", "103", "104")
SUPERVISOR = "200"


class AmiProxy:
    """A TCP relay in front of AMI, on its own thread, that can cut every connection at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port(1)
        self.drops = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        pair = {writer, upstream_writer}
        self._writers |= pair

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for end in pair:
                    end.close()
                self._writers -= pair

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def drop(self) -> None:
        def cut() -> None:
            for writer in list(self._writers):
                transport = writer.transport
                transport.abort()
        self.drops += 1
        self._loop.call_soon_threadsafe(cut)


@dataclass
class Serve:
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    lifetimes: list[list[tuple[float, int]]] = field(default_factory=list)

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([CTL, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self.started_at = time.monotonic()
        self.rss_samples = []
        self.lifetimes.append(self.rss_samples)

    def stop(self, kill: bool = False) -> int | None:
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def sample(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.rss_samples.append((time.monotonic() - self.started_at, int(line.split()[1]) * 1024))
        except OSError:
            pass

    def reconciled_count(self) -> int:
        text = self.log_path.read_text(errors="replace")
        return text.count("reconciled with the PBX")


REGISTER_EXPIRES = 300


def ctl(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([CTL, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"ctl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--drop-every", type=float, default=None, help="seconds between AMI drops")
    parser.add_argument("--restart-every", type=float, default=None, help="seconds between serve restarts")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    duration = args.minutes * 60
    # A short run still sees several drops and two restarts; a long one a drop a minute.
    drop_every = args.drop_every or max(20.0, min(60.0, duration / 6))
    restart_every = args.restart_every or max(50.0, min(600.0, duration / 3))
    chooser = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ctl-soak-"))
    instance = Instance(work / "asterisk")
    sip, ami, clients, agi = free_port(), free_port(1), free_port(), free_port(1)
    rtp = chooser.randrange(40000, 58000, 200)
    settings = {**DEFAULTS, "SIP_PORT": str(sip), "AMI_PORT": str(ami), "CLIENTS_PORT": str(clients),
                "AGI_PORT": str(agi), "RTP_START": str(rtp), "RTP_END": str(rtp + 399), "SYSTEM_NAME": "ctl-soak"}
    phones: list[SippPhone] = []
    serve: Serve | None = None
    summary: dict[str, Any] = {"minutes": args.minutes}
    failures: list[str] = []
    try:
        (work / "recordings").mkdir()
        instance.start(settings, recordings=work / "recordings")
        secrets = secrets_of(instance.state)
        proxy = AmiProxy(ami)
        base = {key: value for key, value in os.environ.items() if not key.startswith("CTL_")}
        base.update({"CTL_DATABASE_URL": f"sqlite:///{work / 'ctl.db'}", "CTL_ASTERISK_PORT": str(ami),
                     "CTL_ASTERISK_SECRET": secrets["ami"], "CTL_ASTERISK_NODE": "soak",
                     "CTL_ASTERISK_RECONNECT_MAX": "2", "CTL_MONITOR_AGI_PORT": str(agi),
                     "CTL_API_PORT": str(free_port(socket.SOCK_STREAM)), "CTL_API_SOCKET": str(work / "ctl.sock"),
                     "CTL_MONITOR_AGI_SECRET": secrets["agi"], "CTL_CALLS_RING_TIMEOUT": "10",
                     "CTL_RECORDING_DIRECTORY": str(work / "recordings"),
                     "CTL_RECORDING_PBX_DIRECTORY": "/var/spool/asterisk/recordings",
                     "CTL_RECORDING_MIN_FREE_MB": "0", "CTL_LOG_FORMAT": "json", "CTL_LOG_LEVEL": "info"})
        serve_env = {**base, "CTL_ASTERISK_PORT": str(proxy.port)}
        ctl(base, "db", "upgrade")
        for extension in OPERATORS:
            ctl(base, "operator", "add", extension, "--name", f"Operator {extension}")
        ctl(base, "operator", "add", SUPERVISOR, "--name", "Supervisor", "--role", "supervisor")
        contacts: dict[str, int] = {}
        for extension in (*OPERATORS, SUPERVISOR):
            port, media = free_ports(2)
            phones.append(SippPhone("answer", port, media, work / "phones", hold_ms=600_000).start())
            contacts[extension] = port

        def register_phones() -> None:
            # Registrations last REGISTER_EXPIRES s: a real phone renews them, so do we.
            for extension, port in contacts.items():
                status = register(("127.0.0.1", sip), extension, secrets[extension], port,
                                  expires=REGISTER_EXPIRES)
                if status != 200:
                    raise RuntimeError(f"REGISTER {extension} answered {status}")
        register_phones()
        (media,) = free_ports(1)
        phones.append(SippPhone("answer", clients, media, work / "phones", hold_ms=4000).start())

        serve = Serve(serve_env, work / "serve.log")
        serve.start()
        wait_until(lambda: serve is not None and serve.reconciled_count() >= 1, 30, "serve to reconcile")
        placed: list[int] = []
        refused = 0
        monitors = 0
        busy_until: dict[str, float] = {}
        start = time.monotonic()
        next_drop, next_restart, next_sample = start + drop_every, start + restart_every, start
        next_register = start + REGISTER_EXPIRES / 2
        kills = restarts = 0
        while time.monotonic() - start < duration:
            now = time.monotonic()
            if now >= next_sample:
                serve.sample()
                next_sample = now + 5
            if now >= next_register:
                register_phones()
                next_register = now + REGISTER_EXPIRES / 2
            if now >= next_drop:
                proxy.drop()
                next_drop = now + drop_every
            if now >= next_restart:
                kill = restarts % 2 == 1
                serve.stop(kill=kill)
                kills += kill
                restarts += 1
                time.sleep(chooser.uniform(0.5, 3.0))  # calls go on meanwhile
                serve.start()
                next_restart = now + restart_every
            free = [e for e in OPERATORS if busy_until.get(e, 0) < now]
            if free:
                operator = chooser.choice(free)
                number = f"7999{chooser.randrange(10**6, 10**7)}"
                result = ctl(base, "call", "bridge", "--operator", operator, "--to", number, "--json", check=False)
                if result.returncode == 0:
                    placed.append(int(json.loads(result.stdout)["id"]))
                    busy_until[operator] = now + 9  # ring, 4 s of talk, wrap-up margin
                else:
                    refused += 1  # e.g. the operator's previous call not over yet: not a lost row
            if placed and chooser.random() < 0.15:
                target = chooser.choice(OPERATORS)
                result = ctl(base, "monitor", "listen", target, "--by", SUPERVISOR, "--json", check=False)
                monitors += result.returncode == 0
            time.sleep(chooser.uniform(0.5, 1.5))

        # Let every call end, make sure the last serve has reconciled, then stop it.
        time.sleep(12)
        reconciled = serve.reconciled_count()
        if serve.process is None or serve.process.poll() is not None:
            serve.start()
        proxy.drop()  # one last reconnect: the final reconcile sees the PBX idle
        wait_until(lambda: serve is not None and serve.reconciled_count() > reconciled, 60,
                   "serve to reconcile at the end")
        time.sleep(3)
        serve.sample()
        code = serve.stop()
        if code != 0:
            failures.append(f"serve exited {code} on SIGTERM")
        failures += check_store(base, placed, summary)
        failures += check_memory(serve, summary)
        summary.update({"placed": len(placed), "refused_requests": refused, "monitors": monitors,
                        "ami_drops": proxy.drops, "serve_restarts": restarts, "serve_kills": kills})
    except Exception as error:  # the summary still says what happened
        failures.append(f"{type(error).__name__}: {error}")
    finally:
        if serve is not None:
            serve.stop(kill=True)
        for phone in phones:
            phone.stop()
        instance.stop()
        if not args.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            summary["work"] = str(work)
    summary["failures"] = failures
    print(json.dumps(summary, indent=2, default=str))
    return 1 if failures else 0


def check_store(env: dict[str, str], placed: list[int], summary: dict[str, Any]) -> list[str]:
    sys.path.insert(0, str(REPO))
    from sqlalchemy import func, select

    from ctl.store.engine import Store
    from ctl.store.models import Call, MonitorSession, Recording

    failures = []
    store = Store(env["CTL_DATABASE_URL"])
    try:
        with store.transaction() as session:
            rows = {call.id: call for call in session.scalars(select(Call).where(Call.id.in_(placed)))}
            missing = sorted(set(placed) - set(rows))
            open_calls = sorted(i for i, call in rows.items() if call.state != "ended" or call.ended_at is None)
            bridged = sum(1 for call in rows.values() if call.bridged_at is not None)
            active_sessions = session.scalar(select(func.count()).select_from(MonitorSession)
                                             .where(MonitorSession.ended_at.is_(None)))
            sessions = session.scalar(select(func.count()).select_from(MonitorSession))
            active_recordings = session.scalar(select(func.count()).select_from(Recording)
                                               .where(Recording.state.in_(("starting", "recording", "paused"))))
            recordings = session.scalar(select(func.count()).select_from(Recording))
            all_calls = session.scalar(select(func.count()).select_from(Call))
    finally:
        store.dispose()
    summary.update({"call_rows": all_calls, "bridged": bridged, "sessions": sessions, "recordings": recordings,
                    "lost_call_rows": len(missing), "calls_not_ended": len(open_calls),
                    "sessions_left_active": active_sessions, "recordings_left_active": active_recordings})
    if missing:
        failures.append(f"{len(missing)} placed calls have no row: {missing[:10]}")
    if open_calls:
        failures.append(f"{len(open_calls)} calls not ended in the store: {open_calls[:10]}")
    if active_sessions:
        failures.append(f"{active_sessions} monitor sessions left active")
    if active_recordings:
        failures.append(f"{active_recordings} recordings left active")
    if not placed or bridged == 0:
        failures.append("no call was placed and bridged: the soak did not run")
    return failures


def check_memory(serve: Serve, summary: dict[str, Any]) -> list[str]:
    longest = max(serve.lifetimes, key=lambda samples: samples[-1][0] if samples else 0.0)
    warm = [rss for at, rss in longest if at >= 20]
    if len(warm) < 3:
        summary["memory"] = "too few samples after warm-up to judge"
        return []
    first, last = warm[0], warm[-1]
    summary["memory"] = {"lifetime_s": round(longest[-1][0]), "warm_rss_mb": round(first / 2**20, 1),
                         "last_rss_mb": round(last / 2**20, 1), "peak_rss_mb": round(max(warm) / 2**20, 1)}
    if last > first * 1.25 + 8 * 2**20:
        return [f"serve's memory grew from {first / 2**20:.1f} MB to {last / 2**20:.1f} MB"]
    return []


if __name__ == "__main__":
    sys.exit(main())
