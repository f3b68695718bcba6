"""Real SIP peers for ctl's tests and demo: a REGISTER client and sipp phones.

Standard library only. A phone is two parts: `register()` tells Asterisk
where the phone is (Contact = the sipp process's port) with digest auth, and
`SippPhone` answers, rejects or ignores the INVITEs that arrive there.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "sipp"


# Below Linux's ephemeral range (32768-60999): a port handed out here cannot be taken, between
# the choice and the bind, by the local end of some process's outgoing connection (seen in CI:
# ctl serve's FastAGI port "already in use").
_PORTS = range(20000, 32000)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A free loopback port (kind 2 = UDP, 1 = TCP), outside the ephemeral range."""
    chooser = secrets.SystemRandom()
    for _ in range(500):
        port = chooser.choice(_PORTS)
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, kind) as sock:  # everything busy: any port at all
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Ports free for both UDP and TCP (sipp media uses port and port+2)."""
    found: list[int] = []
    while len(found) < count:
        port = free_port(socket.SOCK_STREAM)
        port += port % 2  # sipp wants an even media port
        if port + 3 > 65535:
            continue
        try:
            for offset in range(4):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        if all(abs(port - other) > 4 for other in found):
            found.append(port)
    return found


def _digest(user: str, password: str, realm: str, nonce: str, method: str, uri: str,
            qop: str | None, cnonce: str, nc: str) -> str:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if qop:
        return md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5(f"{ha1}:{nonce}:{ha2}")


def register(server: tuple[str, int], user: str, password: str, contact_port: int,
             expires: int = 300, timeout: float = 5.0) -> int:
    """REGISTER `user` at `server` with Contact 127.0.0.1:contact_port; return the final status."""
    host, port = server
    uri = f"sip:{host}:{port}"
    call_id = secrets.token_hex(8)
    tag = secrets.token_hex(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        local_port = sock.getsockname()[1]
        authorization = ""
        for cseq in (1, 2):
            branch = "z9hG4bK" + secrets.token_hex(6)
            request = (
                f"REGISTER {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\n"
                f"From: <sip:{user}@{host}>;tag={tag}\r\n"
                f"To: <sip:{user}@{host}>\r\n"
                f"Call-ID: {call_id}\r\n"
                f"CSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{contact_port}>\r\n"
                f"Expires: {expires}\r\n"
                f"{authorization}"
                f"User-Agent: ctl-test-phone\r\n"
                f"Content-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), server)
            while True:
                data = sock.recv(65535).decode(errors="replace")
                status = int(data.split(" ", 2)[1])
                if status >= 200:
                    break
            if status != 401:
                return status
            challenge = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", data, re.M | re.I)
            if challenge is None:
                return status
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(1)))
            qop = "auth" if "auth" in params.get("qop", "").split(",") else None
            cnonce, nc = secrets.token_hex(4), "00000001"
            response = _digest(user, password, params["realm"], params["nonce"], "REGISTER", uri, qop, cnonce, nc)
            authorization = (
                f'Authorization: Digest username="{user}", realm="{params["realm"]}", '
                f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", algorithm=MD5'
                + (f', qop={qop}, cnonce="{cnonce}", nc={nc}' if qop else "")
                + (f', opaque="{params["opaque"]}"' if "opaque" in params else "")
                + "\r\n"
            )
        return status


def make_tone(path: Path, frequency: float, seconds: float = 2.0) -> Path:
    """Raw 8 kHz mu-law sine, as sipp's rtp_stream plays it."""
    if not path.exists():
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(path),
                        "synth", str(seconds), "sine", str(frequency), "vol", "0.5"], check=True)
    return path


class _Sipp:
    """A sipp process: started with its output in workdir/sipp-PORT.log, waited for, stopped."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None

    def _launch(self, command: list[str]) -> None:
        log = open(self.workdir / f"sipp-{self.port}.log", "ab")
        self.process = subprocess.Popen(command, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class SippPhone(_Sipp):
    """One sipp process acting as a phone (or as the clients' network) on 127.0.0.1:port."""

    scenario: str  # answer | busy | noanswer
    port: int
    media_port: int
    workdir: Path
    ring_ms: int = 300
    hold_ms: int = 4000
    # Asterisk's qualify OPTIONS arrive as calls of their own (the scenarios
    # answer them), so by default there is no call limit: the test stops the phone.
    calls: int | None = None
    tone: Path | None = None
    # Keys the phone presses after answering: (milliseconds after answer, key) pairs.
    digits: list[tuple[int, str]] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> SippPhone:
        if not _udp_port_free(self.port):
            raise RuntimeError(f"UDP port {self.port} is already in use: cannot start a phone there")
        self.workdir.mkdir(parents=True, exist_ok=True)
        tone = self.tone or make_tone(self.workdir / "tone-440.ulaw", 440)
        # sipp substitutes -key values only in message text, not in attributes
        # such as a pause's length: fill the scenario's tokens here instead.
        template = (SCENARIOS / f"uas_{self.scenario}.xml").read_text()
        scenario = self.workdir / f"uas_{self.scenario}_{self.port}.xml"
        scenario.write_text(template.replace("@RING_MS@", str(self.ring_ms))
                            .replace("@HOLD_MS@", str(self.hold_ms)).replace("@TONE@", str(tone))
                            .replace("<!--@DIGITS@-->", "\n  ".join(dtmf_steps(self.digits))))
        command = [
            "sipp", "-sf", str(scenario),
            "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(self.media_port),
            "-aa", "-nostdin", "-trace_err",
        ]
        if self.calls is not None:
            command += ["-m", str(self.calls)]
        self._launch(command)
        assert self.process is not None
        _wait_udp_bound(self.port, self.process)
        return self


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_udp_bound(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sipp on port {port} exited with {process.returncode}")
        if not _udp_port_free(port):
            return
        time.sleep(0.02)
    raise RuntimeError(f"sipp did not bind port {port}")


def secrets_of(state: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (state / "secrets").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


if __name__ == "__main__":  # pragma: no cover - manual check
    print(free_ports(int(os.environ.get("N", "3"))))


_UAC_INVITE = """INVITE sip:{target}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{target}@[remote_ip]>
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{auth}Content-Type: application/sdp
Content-Length: [len]

v=0
o=ctl 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
"""

_UAC_ACK = """ACK sip:{target}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: {cseq} ACK
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0
"""


_DTMF_FILES = {"*": "star", "#": "pound"}


def dtmf_steps(digits: list[tuple[int, str]]) -> list[str]:
    """sipp steps pressing `digits` ((milliseconds after answer, key) pairs) as RFC 4733
    events, pausing the tone while each plays."""
    steps, elapsed = [], 0
    for at_ms, digit in digits:
        if digit not in "0123456789*#" or len(digit) != 1:
            raise ValueError(f"not a DTMF key: {digit!r}")
        steps.append(f'<pause milliseconds="{max(at_ms - elapsed, 0)}"/>')
        steps.append('<nop><action><exec rtp_stream="pause"/>'
                     f'<exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_{_DTMF_FILES.get(digit, digit)}.pcap"/>'
                     '</action></nop>')
        steps.append('<pause milliseconds="400"/>')
        steps.append('<nop><action><exec rtp_stream="resume"/></action></nop>')
        elapsed = at_ms + 400
    return steps


def caller_scenario(user: str, target: str, digits: list[tuple[int, str]], hold_ms: int, tone: Path,
                    authenticate: bool = True, challenge: int = 401) -> str:
    """A phone that dials `target` (with digest auth, or without for a trunk identified by
    its address), streams `tone`, presses `digits` ((milliseconds after answer, digit)
    pairs, RFC 4733 events) and hangs up after `hold_ms` unless the PBX sends BYE first
    (as it does after a refusal). `challenge`: Asterisk answers an INVITE with 401,
    FreeSWITCH with 407."""
    steps = [f'<nop><action><exec rtp_stream="{tone},-1,0"/></action></nop>', *dtmf_steps(digits)]
    body = "\n  ".join(steps)
    cseq = 2 if authenticate else 1
    auth_steps = ""
    if authenticate:
        invite1 = _UAC_INVITE.format(target=target, user=user, cseq=1, auth="")
        auth_steps = f"""  <send retrans="500"><![CDATA[
{invite1}]]></send>
  <recv response="100" optional="true"/>
  <recv response="{challenge}" auth="true"/>
  <send><![CDATA[
{_UAC_ACK.format(target=target, user=user, cseq=1, branch="[branch-1]")}
]]></send>
"""
    invite = _UAC_INVITE.format(target=target, user=user, cseq=cseq, auth="[authentication]\n" if authenticate else "")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ctl calling phone {user} -> {target}">
{auth_steps}  <send retrans="500"><![CDATA[
{invite}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  {body}
  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop next="end"><action><exec rtp_stream="pause"/></action></nop>
  <label id="hangup"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: {cseq + 1} BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <label id="end"/>
</scenario>
"""


@dataclass
class SippCaller(_Sipp):
    """One call placed by a registered phone: `sipp` as a UAC with digest auth."""

    user: str
    password: str | None  # None: no digest auth (the clients' trunk, identified by address)
    target: str
    server: tuple[str, int]
    port: int
    media_port: int
    workdir: Path
    tone: Path
    digits: list[tuple[int, str]] = field(default_factory=list)
    hold_ms: int = 30_000
    challenge: int = 401  # FreeSWITCH challenges an INVITE with 407
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> SippCaller:
        self.workdir.mkdir(parents=True, exist_ok=True)
        scenario = self.workdir / f"uac_{self.user}_{self.port}.xml"
        scenario.write_text(caller_scenario(self.user, self.target, self.digits, self.hold_ms, self.tone,
                                            authenticate=self.password is not None, challenge=self.challenge))
        command = ["sipp", f"{self.server[0]}:{self.server[1]}", "-sf", str(scenario),
                   "-i", "127.0.0.1", "-p", str(self.port), "-mi", "127.0.0.1", "-mp", str(self.media_port),
                   "-m", "1", "-nostdin", "-trace_err", "-aa"]
        if self.password is not None:
            command += ["-au", self.user, "-ap", self.password]
        self._launch(command)
        return self
