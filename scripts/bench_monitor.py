#!/usr/bin/env python3
"""Benchmark: from a monitor request to Asterisk's ChanSpyStart, through ctl and bare.

On one sandbox Asterisk, with operator 101 bridged to a client and supervisor 200's
phone answering after --ring-ms, it alternates (side by side, same conditions):

  bare     AMI Originate PJSIP/200 → Application ChanSpy(<exact channel>,q)
  service  ctl's monitoring service in process (rules, store row, PBX snapshot, originate)
  cli      `ctl monitor listen 101 --by 200` as a user runs it (process start included)
  api      POST /api/v1/monitor/sessions to the running `ctl serve` (a kept-alive
           connection, a supervisor's bearer token), as an application or the board does

and prints the median and spread of each and their ratios to bare. Each attempt
ends the spy before the next. Run after scripts/setup:

    .venv/bin/python scripts/bench_monitor.py [--rounds 10] [--ring-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from asterisk_sandbox import DEFAULTS, Instance  # noqa: E402
from sip_peers import SippPhone, free_port, free_ports, register, secrets_of  # noqa: E402

CTL = str(REPO / ".venv" / "bin" / "ctl")


class AmiWatcher:
    """A raw AMI session that timestamps ChanSpyStart events and sends actions."""

    def __init__(self, port: int, secret: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"Action: Login\r\nUsername: ctl\r\nSecret: {secret}\r\nEvents: on\r\n\r\n".encode())
        self.starts: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                block, buffer = buffer.split(b"\r\n\r\n", 1)
                if block.startswith(b"Event: ChanSpyStart"):
                    fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
                    with self.lock:
                        self.starts.append((time.perf_counter(), fields.get("SpyerUniqueid", "")))

    def send(self, **fields: str) -> None:
        self.sock.sendall(("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode())

    def wait_start(self, after: float, timeout: float = 10) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                for at, _ in self.starts:
                    if at >= after:
                        return at
            time.sleep(0.0005)
        raise RuntimeError("no ChanSpyStart")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--ring-ms", type=int, default=0, help="how long the supervisor's phone rings")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ctl-bench-"))
    sip, ami, clients, agi = free_port(), free_port(kind=1), free_port(), free_port(kind=1)
    settings = {**DEFAULTS, "SIP_PORT": str(sip), "AMI_PORT": str(ami), "CLIENTS_PORT": str(clients),
                "AGI_PORT": str(agi), "SYSTEM_NAME": "ctl-bench"}
    asterisk = Instance(work / "asterisk")
    asterisk.start(settings)
    secrets = secrets_of(work / "asterisk")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTL_")}
    env.update({"CTL_DATABASE_URL": f"sqlite:///{work / 'ctl.db'}", "CTL_ASTERISK_PORT": str(ami),
                "CTL_ASTERISK_SECRET": secrets["ami"], "CTL_MONITOR_AGI_PORT": str(agi),
                "CTL_MONITOR_AGI_SECRET": secrets["agi"], "CTL_LOG_LEVEL": "warning",
                "CTL_API_PORT": str(free_port(kind=1)), "CTL_API_SOCKET": str(work / "ctl.sock")})
    phones: list[SippPhone] = []
    serve = None
    try:
        subprocess.run([CTL, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([CTL, "operator", "add", "101", "--name", "Op"], env=env, check=True, capture_output=True)
        subprocess.run([CTL, "operator", "add", "200", "--name", "Sup", "--role", "supervisor"], env=env,
                       check=True, capture_output=True)
        serve = subprocess.Popen([CTL, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for extension, ring in (("101", 100), ("200", args.ring_ms)):
            port, media = free_ports(2)
            phones.append(SippPhone("answer", port, media, work / "phones", ring_ms=ring, hold_ms=600_000).start())
            assert register(("127.0.0.1", sip), extension, secrets[extension], port) == 200
        _, client_media = free_ports(2)
        phones.append(SippPhone("answer", clients, client_media, work / "phones", hold_ms=600_000).start())
        while "Avail " not in asterisk.rx("pjsip show contact 200/sip:200@127.0.0.1:" + str(phones[1].port)).stdout:
            time.sleep(0.05)
        time.sleep(1)  # ctl serve connected
        subprocess.run([CTL, "call", "bridge", "--operator", "101", "--to", "79990000000"], env=env, check=True,
                       capture_output=True)
        watcher = AmiWatcher(ami, secrets["ami"])
        operator_channel = ""
        while not operator_channel:
            time.sleep(0.1)
            for line in asterisk.rx("core show channels concise").stdout.splitlines():
                if line.startswith("PJSIP/101-") and "!Up!" in line:
                    operator_channel = line.split("!", 1)[0]
        time.sleep(1)  # bridged and in the store

        from ctl.asterisk import AsteriskSwitch
        from ctl.cli.pbx import connected
        from ctl.config import load_settings
        from ctl.model import MonitorMode
        from ctl.services.monitoring import start_monitoring
        from ctl.store.engine import Store

        ctl_settings = load_settings(environ=env)
        store = Store(ctl_settings.database.url)

        def end_spy() -> None:
            subprocess.run([CTL, "monitor", "stop", "--by", "200"], env=env, capture_output=True)
            for line in asterisk.rx("core show channels concise").stdout.splitlines():
                if "!ChanSpy!" in line:
                    asterisk.rx("channel request hangup " + line.split("!", 1)[0])
            while "!ChanSpy!" in asterisk.rx("core show channels concise").stdout:
                time.sleep(0.02)
            time.sleep(0.3)

        def bare() -> float:
            started = time.perf_counter()
            watcher.send(Action="Originate", Channel="PJSIP/200", Application="ChanSpy",
                         Data=f"{operator_channel},q", Async="true", ChannelId=f"bare-{uuid.uuid4().hex}")
            return watcher.wait_start(started) - started

        async def listen() -> None:
            async with connected(AsteriskSwitch(ctl_settings.asterisk)) as switch:
                await start_monitoring(store, switch, ctl_settings, MonitorMode.LISTEN, "101", "200", follow=False)

        def service() -> float:
            started = time.perf_counter()
            asyncio.run(listen())
            return watcher.wait_start(started) - started

        import httpx

        token = json.loads(subprocess.run([CTL, "token", "create", "200", "--json"], env=env, check=True,
                                          capture_output=True, text=True).stdout)["token"]
        http = httpx.Client(base_url=f"http://127.0.0.1:{env['CTL_API_PORT']}/api/v1",
                            headers={"Authorization": f"Bearer {token}"})
        http.get("/health").raise_for_status()  # the connection is open before the first measure

        def api() -> float:
            started = time.perf_counter()
            http.post("/monitor/sessions", json={"operator": "101", "mode": "listen"}).raise_for_status()
            return watcher.wait_start(started) - started

        def cli() -> float:
            started = time.perf_counter()
            subprocess.run([CTL, "monitor", "listen", "101", "--by", "200"], env=env, check=True,
                           capture_output=True)
            return watcher.wait_start(started) - started

        results: dict[str, list[float]] = {"bare": [], "service": [], "api": [], "cli": []}
        for _ in range(args.rounds):
            for name, attempt in (("bare", bare), ("service", service), ("api", api), ("cli", cli)):
                results[name].append(attempt())
                end_spy()
        base = statistics.median(results["bare"])
        print(f"request → ChanSpyStart, {args.rounds} rounds each, alternating, supervisor rings {args.ring_ms} ms")
        for name, values in results.items():
            median = statistics.median(values)
            print(f"  {name:<8} median {median * 1000:7.1f} ms   min {min(values) * 1000:7.1f}   "
                  f"max {max(values) * 1000:7.1f}   ratio to bare {median / base:5.2f}")
        return 0
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(15)
        for phone in phones:
            phone.stop()
        asterisk.stop()


if __name__ == "__main__":
    sys.exit(main())
