"""Run a FreeSWITCH you already have on freeswitch_conf/, on loopback and free ports.

This does not build or fetch FreeSWITCH (no package reaches this project's CI): it runs
the binary named by --binary or CTL_TEST_FREESWITCH_BIN, with the repository's own
standalone configuration copied into a state directory, every port and password given
through the CTL_FREESWITCH_* variables that vars-ctl.xml reads.

    python scripts/freeswitch_sandbox.py start --binary /usr/bin/freeswitch STATE
    python scripts/freeswitch_sandbox.py stop STATE
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "freeswitch_conf"
DIRS = ("conf", "log", "db", "run", "storage", "recordings", "sounds", "cache", "temp")


class SandboxError(Exception):
    pass


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class FreeswitchSandbox:
    binary: Path
    state: Path

    @property
    def settings_file(self) -> Path:
        return self.state / "settings.json"

    @property
    def recordings(self) -> Path:
        return self.state / "recordings"

    def settings(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads(self.settings_file.read_text())
        return loaded

    def start(self, ports: dict[str, int], boot_timeout: float = 60, ping_interval: int = 30) -> dict[str, str]:
        """`ports`: esl, outbound, phones, clients, carrier, rtp_start, rtp_end; `ping_interval`:
        seconds between the OPTIONS pings to registered phones."""
        if not self.binary.is_file():
            raise SandboxError(f"no FreeSWITCH binary at {self.binary}")
        for name in DIRS:
            (self.state / name).mkdir(parents=True, exist_ok=True)
        conf = self.state / "conf"
        shutil.rmtree(conf)
        shutil.copytree(CONF_DIR, conf, symlinks=False)  # the dialplan symlink becomes a file
        settings = {
            "CTL_FREESWITCH_PASSWORD": secrets.token_urlsafe(12),
            "CTL_FREESWITCH_OUTBOUND_SECRET": secrets.token_urlsafe(24),
            "CTL_FREESWITCH_PHONE_PASSWORD": secrets.token_urlsafe(9),
            "CTL_FREESWITCH_PORT": str(ports["esl"]),
            "CTL_FREESWITCH_OUTBOUND_HOST": "127.0.0.1",
            "CTL_FREESWITCH_OUTBOUND_PORT": str(ports["outbound"]),
            "CTL_FREESWITCH_PHONES_PORT": str(ports["phones"]),
            "CTL_FREESWITCH_CLIENTS_PORT": str(ports["clients"]),
            "CTL_FREESWITCH_CLIENTS_PROXY": f"127.0.0.1:{ports['carrier']}",
            "CTL_FREESWITCH_RTP_START": str(ports["rtp_start"]),
            "CTL_FREESWITCH_RTP_END": str(ports["rtp_end"]),
            "CTL_FREESWITCH_PING_INTERVAL": str(ping_interval),
        }
        self.settings_file.write_text(json.dumps(settings, indent=1))
        command = [str(self.binary), "-nonat", "-nf", "-nc"]
        for name in DIRS:
            command += [f"-{name}", str(self.state / name)]
        log = (self.state / "log" / "stdout.log").open("ab")
        process = subprocess.Popen(command, env={**os.environ, **settings}, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        (self.state / "pid").write_text(str(process.pid))
        deadline = time.monotonic() + boot_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SandboxError(f"FreeSWITCH exited with {process.returncode}; see {self.state / 'log'}")
            if _port_open(ports["esl"]):
                return settings
            time.sleep(0.2)
        self.stop()
        raise SandboxError(f"FreeSWITCH's event socket not up on {ports['esl']} after {boot_timeout} s")

    def stop(self, timeout: float = 15) -> None:
        pid_file = self.state / "pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid_file.unlink()
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("state", type=Path)
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("CTL_TEST_FREESWITCH_BIN", "freeswitch")))
    parser.add_argument("--esl-port", type=int, default=8021)
    parser.add_argument("--outbound-port", type=int, default=8084)
    parser.add_argument("--phones-port", type=int, default=5060)
    parser.add_argument("--clients-port", type=int, default=5080)
    parser.add_argument("--carrier-port", type=int, default=5090)
    args = parser.parse_args(argv)
    sandbox = FreeswitchSandbox(args.binary, args.state)
    try:
        if args.action == "stop":
            sandbox.stop()
            return 0
        settings = sandbox.start({"esl": args.esl_port, "outbound": args.outbound_port, "phones": args.phones_port,
                                  "clients": args.clients_port, "carrier": args.carrier_port,
                                  "rtp_start": 16384, "rtp_end": 32768})
    except SandboxError as error:
        print(f"freeswitch_sandbox: {error}", file=sys.stderr)
        return 1
    for key, value in settings.items():
        print(f"export {key}='{value}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
