"""The sandbox Asterisk itself: loopback only, no mounts on the host, clean stop."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.e2e.conftest import Sandbox, start_sandbox


def _mount_points(pid: str = "self") -> set[str]:
    return {line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()}


def _sockets(pid: int) -> list[tuple[str, str]]:
    """(protocol, local address) of every socket the process holds."""
    out = subprocess.run(["ss", "-H", "-lnup", "-lntp"], capture_output=True, text=True, check=True).stdout
    out += subprocess.run(["ss", "-H", "-anup"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            fields = line.split()
            protocol = fields[0] if fields[0] in ("udp", "tcp") else ("tcp" if "LISTEN" in line else "udp")
            local = next(f for f in fields if re.match(r"^(\[.*\]|[0-9.*]+):\d+$", f))
            found.add((protocol, local))
    return sorted(found)


def test_sandbox_binds_loopback_only_and_leaks_no_mount(tmp_path: Path) -> None:
    sandbox = start_sandbox(tmp_path / "asterisk")
    pid = sandbox.instance.pid()
    assert pid is not None
    try:
        # The bind mounts live in Asterisk's private namespace, never in ours.
        assert "/etc/asterisk" in _mount_points(str(pid)) and "/var/spool/asterisk" in _mount_points(str(pid))
        assert not any(point.startswith(str(sandbox.instance.root)) for point in _mount_points())

        sockets = _sockets(pid)
        settings = sandbox.settings
        assert ("tcp", f"127.0.0.1:{settings['AMI_PORT']}") in sockets
        assert ("udp", f"127.0.0.1:{settings['SIP_PORT']}") in sockets
        # Everything else is loopback too, except pjlib's two resolver sockets, which no
        # option turns off; the root's resolv.conf is empty, so they never send.
        wildcard = [local for _, local in sockets if not local.startswith("127.")]
        assert len(wildcard) <= 2 and all(re.match(r"^(0\.0\.0\.0|\*|\[::\]):\d+$", w) for w in wildcard), sockets
        assert all(protocol == "udp" for protocol, local in sockets if not local.startswith("127."))
        assert (sandbox.instance.root / "etc/resolv.conf").read_text().strip() == ""
    finally:
        assert sandbox.instance.stop()
    assert sandbox.instance.pid() is None
    assert not os.path.exists(f"/proc/{pid}")
    assert not any(point.startswith(str(sandbox.instance.root)) for point in _mount_points())


def test_ctls_configuration_loads_without_a_warning(asterisk: Sandbox) -> None:
    """A ';' inside an application's arguments starts a comment: Asterisk then warns and loads a
    broken line. Every config file ctl ships must load cleanly."""
    console = (asterisk.instance.state / "console.log").read_text(errors="replace")
    complaints = [line for line in console.splitlines()
                  if "WARNING" in line and any(part in line for part in ("pbx_config.c", "config.c", "features"))]
    assert complaints == []
