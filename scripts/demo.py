#!/usr/bin/env python3
"""ctl's first five minutes: a real Asterisk, two SIP phones, one click-to-call.

Run by `scripts/demo` after set-up. Every step prints the `ctl` command a
newcomer would type and what it answers. Exits non-zero if the call does not go
through created → bridged → ended in the store.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from asterisk_sandbox import DEFAULTS, Instance  # noqa: E402
from sip_peers import SippPhone, free_port, free_ports, register, secrets_of  # noqa: E402

CTL = REPO / ".venv" / "bin" / "ctl"
BOLD, DIM, GREEN, RED, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m") if sys.stdout.isatty() \
    else ("", "", "", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}{text}{RESET}", flush=True)


def ctl(env: dict[str, str], *args: str) -> str:
    print(f"{DIM}${RESET} ctl {shlex.join(args)}", flush=True)
    result = subprocess.run([str(CTL), *args], env=env, capture_output=True, text=True)
    output = (result.stdout + result.stderr).rstrip()
    if output:
        print("  " + output.replace("\n", "\n  "), flush=True)
    if result.returncode != 0:
        raise SystemExit(f"{RED}demo failed: `ctl {' '.join(args)}` exited {result.returncode}{RESET}")
    return result.stdout


def wait_until(what: str, condition, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"{RED}demo failed: timed out waiting for {what}{RESET}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ctl-demo-"))
    sip_port, ami_port, clients_port = free_port(), free_port(kind=1), free_port()
    settings = {**DEFAULTS, "SIP_PORT": str(sip_port), "AMI_PORT": str(ami_port),
                "CLIENTS_PORT": str(clients_port), "SYSTEM_NAME": "ctl-demo"}
    asterisk = Instance(work / "asterisk")
    phones: list[SippPhone] = []
    serve: subprocess.Popen[bytes] | None = None
    try:
        say("1. Start a real Asterisk 22 (Debian unstable root, bound to 127.0.0.1)")
        asterisk.start(settings)
        print(f"  Asterisk up: SIP 127.0.0.1:{sip_port}, AMI 127.0.0.1:{ami_port}; configs from asterisk_conf/ "
              f"and dialplan/asterisk/, state in {work / 'asterisk'}")

        env = {key: value for key, value in os.environ.items() if not key.startswith("CTL_")}
        env.update({
            "CTL_DATABASE_URL": f"sqlite:///{work / 'ctl.db'}",
            "CTL_ASTERISK_PORT": str(ami_port),
            "CTL_ASTERISK_SECRET": secrets_of(work / "asterisk")["ami"],
            # The FastAGI path secret the dialplan presents to ctl serve (agi= in the secrets file).
            "CTL_MONITOR_AGI_SECRET": secrets_of(work / "asterisk")["agi"],
            "CTL_LOG_FORMAT": "text",
            # Asterisk writes recordings inside its root; ctl reads them from the host.
            "CTL_RECORDING_DIRECTORY": str(work / "asterisk" / "spool" / "recordings"),
            "CTL_RECORDING_PBX_DIRECTORY": "/var/spool/asterisk/recordings",
            # serve's HTTP API: a free loopback port, and its local socket beside the store.
            "CTL_API_PORT": str(free_port(kind=1)),
            "CTL_API_SOCKET": str(work / "ctl.sock"),
        })
        say("2. Point ctl at it (environment variables override ctl.toml) and create the store")
        print(f"  CTL_DATABASE_URL={env['CTL_DATABASE_URL']}\n  CTL_ASTERISK_PORT={ami_port}  "
              "CTL_ASTERISK_SECRET, CTL_MONITOR_AGI_SECRET=<generated at install, in the sandbox's secrets file>\n"
              f"  CTL_RECORDING_DIRECTORY={env['CTL_RECORDING_DIRECTORY']}")
        ctl(env, "db", "upgrade")

        say("3. Add an operator, a supervisor and a project")
        ctl(env, "operator", "add", "101", "--name", "Anna Petrova")
        ctl(env, "operator", "add", "200", "--name", "Sam Okafor", "--role", "supervisor")
        ctl(env, "project", "add", "Sales", "--script", "Hello, this is Anna from ACME…",
            "--result", "sale:Sale made:success", "--result", "callback:Call back later", "--member", "101")
        ctl(env, "operator", "list")

        say("4. Run the controller: `ctl serve` follows Asterisk's events into the store")
        print(f"{DIM}${RESET} ctl serve &    {DIM}(log: {work / 'serve.log'}){RESET}")
        serve = subprocess.Popen([str(CTL), "serve"], env=env, stdout=open(work / "serve.log", "w"),
                                 stderr=subprocess.STDOUT)
        wait_until("ctl serve to connect", lambda: "reconciled with the PBX" in (work / "serve.log").read_text())

        say("5. Phones: operator 101 registers (SIP digest auth); sipp also plays the client's phone")
        media = free_ports(3)
        operator_phone = SippPhone("answer", media[0], media[1], work / "phones", ring_ms=1000, hold_ms=60_000)
        phones.append(operator_phone.start())
        status = register(("127.0.0.1", sip_port), "101", secrets_of(work / "asterisk")["101"], operator_phone.port)
        print(f"  REGISTER 101 → {status}")
        client_phone = SippPhone("answer", clients_port, media[2], work / "phones", ring_ms=1500, hold_ms=5000)
        phones.append(client_phone.start())
        print("  the client's phone answers after 1.5 s of ringing and hangs up 5 s later")
        wait_until("phone 101 reachable",
                   lambda: "Avail " in asterisk.rx("pjsip show contacts").stdout)
        ctl(env, "operator", "status", "101", "available")

        say("6. Click-to-call: ring operator 101; when Anna answers, dial the client and bridge")
        ctl(env, "call", "bridge", "--operator", "101", "--to", "+7 999 123-45-67", "--project", "Sales")
        call_id = json.loads(ctl_quiet(env, "call", "list", "--json"))[0]["id"]

        def state() -> str:
            return str(json.loads(ctl_quiet(env, "call", "show", str(call_id), "--json"))["state"])

        wait_until("the call to be bridged", lambda: state() == "bridged")
        say("7. While they talk")
        ctl(env, "call", "list", "--active")

        wait_until("the client to hang up", lambda: state() == "ended", timeout=30)
        say("8. The client hung up: the finished call, as the store keeps it")
        ctl(env, "call", "show", str(call_id))
        ctl(env, "call", "list")
        final = json.loads(ctl_quiet(env, "call", "show", str(call_id), "--json"))
        if final["cause"] != "normal_clearing" or final["bridged_at"] is None:
            print(f"{RED}unexpected end: {final}{RESET}")
            return 1

        say("9. The call was recorded (project policy: always) — one WAV, described by the store")

        def recording_done() -> bool:
            rows = json.loads(ctl_quiet(env, "record", "list", "--json"))
            return bool(rows) and rows[0]["state"] == "stopped"

        wait_until("the recording to be closed", recording_done)
        ctl(env, "record", "list")
        exported = work / f"call-{call_id}.wav"
        ctl(env, "call", "recording", str(call_id), "-o", str(exported))
        recorded = json.loads(ctl_quiet(env, "record", "list", "--json"))[0]
        if not recorded["complete"]:
            print(f"{RED}recording incomplete: {recorded['problem']}{RESET}")
            return 1

        say("10. Anna's status followed the call: talking, then wrap-up until she saves its result")

        def status() -> str:
            return str(json.loads(ctl_quiet(env, "operator", "status", "101", "--json"))["status"])

        wait_until("operator 101 in wrap-up", lambda: status() == "wrap_up")
        ctl(env, "operator", "status", "101")
        ctl(env, "call", "result", str(call_id), "sale", "--comment", "two licences")
        ctl(env, "operator", "history", "101")
        if status() != "available":
            print(f"{RED}operator 101 is {status()} after the result, not available{RESET}")
            return 1

        say("11. Today's reports, computed by the database")
        ctl(env, "report", "occupancy", "--from", "today", "--tz", "UTC")
        ctl(env, "report", "calls", "--from", "today", "--tz", "UTC")
        ctl(env, "report", "results", "--from", "today", "--tz", "UTC")

        say("12. What ctl serve logged")
        for line in (work / "serve.log").read_text().splitlines():
            if any(f"ctl.{name}" in line for name in ("calls", "asterisk", "recording", "operators")):
                print("  " + line)
        print(f"\n{GREEN}demo complete: call {call_id} went created → ringing → answered → bridged → ended "
              f"(normal clearing); Anna went talking → wrap-up → available with result 'sale'; "
              f"its recording ({recorded['duration_s']} s) is in {exported}{RESET}")
        return 0
    finally:
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(15)
        for phone in phones:
            phone.stop()
        asterisk.stop()


def ctl_quiet(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(CTL), *args], env=env, capture_output=True, text=True, check=True).stdout


if __name__ == "__main__":
    sys.exit(main())
