#!/usr/bin/env python3
"""A real Asterisk 22 for ctl's tests and demo, and the installer of ctl's configs.

    asterisk_sandbox.py build            build (once) the Debian-unstable root
    asterisk_sandbox.py start --state D  render the configs into D, boot Asterisk
    asterisk_sandbox.py stop --state D   stop it (graceful, then SIGKILL)
    asterisk_sandbox.py status --state D exit 0 if it runs and is fully booted
    asterisk_sandbox.py rx --state D CMD run one Asterisk CLI command
    asterisk_sandbox.py env --state D    print CTL_ASTERISK_* settings for ctl
    asterisk_sandbox.py install-conf --dest /etc/asterisk [--set KEY=VALUE]
                                         render asterisk_conf/ and dialplan/ for
                                         a real deployment

Debian 12 has no Asterisk package; Debian unstable has Asterisk 22, so the root
is built with mmdebstrap and cached (CTL_SANDBOX_CACHE, default
/var/cache/ctl/asterisk-root). Each running instance keeps its own etc/run/
spool/log/lib directories under its state directory and sees them through bind
mounts made in a private mount namespace (unshare -m): several instances share
one root, and no mount outlives the process. Everything binds to 127.0.0.1.

Only the standard library is used: this runs before the venv exists.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import secrets as secrets_module
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "asterisk_conf"
DIALPLAN_DIR = REPO / "dialplan" / "asterisk"
DEFAULT_CACHE = Path(os.environ.get("CTL_SANDBOX_CACHE", "/var/cache/ctl/asterisk-root"))
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "asterisk,asterisk-modules,asterisk-core-sounds-en-gsm"
# Bump when the root's recipe changes so caches are rebuilt.
ROOT_RECIPE = "1"

DEFAULTS = {
    "BIND_ADDRESS": "127.0.0.1",
    "SIP_PORT": "15060",
    "AMI_PORT": "15038",
    "RTP_START": "30000",
    "RTP_END": "30999",
    "CLIENTS_HOST": "127.0.0.1",
    "CLIENTS_PORT": "15070",
    "SYSTEM_NAME": "ctl-sandbox",
    "AGI_HOST": "127.0.0.1",
    "AGI_PORT": "4573",
    "CODE_LISTEN": "*222",
    "CODE_WHISPER": "*223",
    "CODE_BARGE": "*224",
    "CODE_RECORD_PAUSE": "*1",
    # Where the PBX writes recordings: ctl's [recording] pbx_directory (or directory).
    "RECORDINGS": "/var/spool/asterisk/recordings",
    # Seconds between the OPTIONS that find a phone unreachable (ctl: suspended).
    "QUALIFY_FREQUENCY": "30",
}
TOKEN = re.compile(r"@([A-Z_]+|SECRET:[A-Za-z0-9_-]+)@")
# Instance directories bind-mounted over the root's own.
INSTANCE_DIRS = {
    "etc": "/etc/asterisk",
    "run": "/run/asterisk",  # /var/run is a link to /run: name the real path
    "spool": "/var/spool/asterisk",
    "log": "/var/log/asterisk",
    "lib": "/var/lib/asterisk",
}


class SandboxError(Exception):
    """A failure reported to the user as one line."""


# ---------------------------------------------------------------------------
# Configuration rendering (also used for real deployments)
# ---------------------------------------------------------------------------
def load_secrets(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def render_tree(dest: Path, settings: dict[str, str], secrets_path: Path) -> dict[str, str]:
    """Render asterisk_conf/ and dialplan/asterisk/ into dest; return the secrets used."""
    settings = _derived(settings)
    known = load_secrets(secrets_path)
    used: dict[str, str] = {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("SECRET:"):
            key = name.split(":", 1)[1]
            if key not in known:
                known[key] = secrets_module.token_hex(16)
            used[key] = known[key]
            return known[key]
        if name not in settings:
            raise SandboxError(f"config token @{name}@ has no value (use --set {name}=...)")
        return settings[name]

    dest.mkdir(parents=True, exist_ok=True)
    sources = [(p, dest / p.name) for p in sorted(CONF_DIR.glob("*.conf"))]
    sources += [(p, dest / "dialplan" / "asterisk" / p.name) for p in sorted(DIALPLAN_DIR.glob("*.conf"))]
    group = _asterisk_group()
    for source, target in sources:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Comment lines may mention tokens; they are left as written.
        lines = source.read_text().splitlines(keepends=True)
        text = "".join(line if line.lstrip().startswith(";") else TOKEN.sub(substitute, line) for line in lines)
        # A file holding a secret (AMI, phone passwords, the FastAGI path) is readable by
        # its owner and the asterisk group only; the others by everyone, as Debian ships them.
        _write_file(target, text, 0o640 if _has_secret(lines) else 0o644, group)
    secrets_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# ctl: secrets for asterisk_conf/ tokens @SECRET:name@\n")
        for key in sorted(known):
            handle.write(f"{key}={known[key]}\n")
    return used


def _has_secret(lines: list[str]) -> bool:
    return any("@SECRET:" in line and not line.lstrip().startswith(";") for line in lines)


def _asterisk_group() -> int | None:
    """The host's asterisk group, if it has one (a real deployment); None in a bare host."""
    try:
        import grp

        return grp.getgrnam("asterisk").gr_gid
    except (ImportError, KeyError):
        return None


def _write_file(path: Path, text: str, mode: int, group: int | None) -> None:
    """Write through a new file created with `mode` (never readable by others in between)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(temporary, mode)  # the umask may have taken bits away
    if group is not None and mode & 0o070:
        try:
            os.chown(temporary, -1, group)
        except PermissionError:
            pass  # not root: the owner still reads it
    os.replace(temporary, path)


def _derived(settings: dict[str, str]) -> dict[str, str]:
    """Tokens computed from others: the three feature codes must share one length."""
    codes = [settings.get(name, "") for name in ("CODE_LISTEN", "CODE_WHISPER", "CODE_BARGE")]
    if len({len(code) for code in codes}) != 1 or not all(codes):
        raise SandboxError(f"CODE_LISTEN, CODE_WHISPER and CODE_BARGE must have the same length, got {codes}")
    return {**settings, "CODE_LENGTH": str(len(codes[0]))}


def parse_settings(pairs: list[str], base: dict[str, str]) -> dict[str, str]:
    settings = dict(base)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_]+", key):
            raise SandboxError(f"--set expects KEY=VALUE with an upper-case KEY, got {pair!r}")
        # RECORDINGS is an absolute path; no other value holds a '/'.
        allowed = r"/[A-Za-z0-9._/-]*" if key == "RECORDINGS" else r"[A-Za-z0-9._:*#-]+"
        if not re.fullmatch(allowed, value) or "/../" in value + "/":
            raise SandboxError(f"--set {key}: value {value!r} has characters a config cannot hold")
        settings[key] = value
    return settings


# ---------------------------------------------------------------------------
# The root
# ---------------------------------------------------------------------------
def build_root(cache: Path) -> Path:
    """Build the cached root once; concurrent callers wait on a lock."""
    root = cache / "root"
    stamp = cache / "recipe"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text().strip() == ROOT_RECIPE and (root / "usr/sbin/asterisk").exists():
            return root
        if shutil.which("mmdebstrap") is None:
            raise SandboxError("mmdebstrap is not installed (apt-get install mmdebstrap)")
        partial = cache / "root.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        print(f"building the Asterisk root in {root} (about a minute)…", file=sys.stderr)
        command = [
            "mmdebstrap", "--variant=apt", "--quiet",
            "--aptopt=Acquire::Check-Valid-Until \"false\"",
            f"--include={PACKAGES}", "sid", str(partial), MIRROR,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SandboxError(f"mmdebstrap failed: {tail[0]}")
        # pjlib opens resolver sockets on 0.0.0.0 whatever the config says; with
        # no nameserver nothing is ever sent from them.
        (partial / "etc/resolv.conf").write_text("")
        partial.rename(root)
        stamp.write_text(ROOT_RECIPE + "\n")
        return root


def asterisk_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "asterisk":
            return int(fields[2]), int(fields[3])
    raise SandboxError("the root has no asterisk user")


# ---------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------
class Instance:
    def __init__(self, state: Path, cache: Path = DEFAULT_CACHE) -> None:
        self.state = state.resolve()
        self.cache = cache
        self.root = cache / "root"

    @property
    def pid_file(self) -> Path:
        return self.state / "asterisk.pid"

    @property
    def settings_file(self) -> Path:
        return self.state / "settings.json"

    @property
    def secrets_file(self) -> Path:
        return self.state / "secrets"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        # A recycled pid belongs to some other program: check it is ours.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"asterisk" in cmdline else None

    def settings(self) -> dict[str, str]:
        return json.loads(self.settings_file.read_text())

    def rx(self, command: str, timeout: float = 15, pid: int | None = None) -> subprocess.CompletedProcess[str]:
        pid = pid or self.pid()
        if pid is None:
            raise SandboxError(f"no Asterisk runs for {self.state}")
        return subprocess.run(
            ["nsenter", "-t", str(pid), "-m", "chroot", str(self.root), "asterisk", "-rx", command],
            capture_output=True, text=True, timeout=timeout,
        )

    def start(self, settings: dict[str, str], boot_timeout: float = 60, recordings: Path | None = None) -> None:
        """Boot Asterisk. `recordings`: a host directory to use as its recordings directory
        (/var/spool/asterisk/recordings) instead of the one under the state directory."""
        if self.pid() is not None:
            raise SandboxError(f"an Asterisk already runs for {self.state} (pid {self.pid()})")
        root = build_root(self.cache)
        uid, gid = asterisk_ids(root)
        self.state.mkdir(parents=True, exist_ok=True)
        for name in INSTANCE_DIRS:
            shutil.rmtree(self.state / name, ignore_errors=True)
        render_tree(self.state / "etc", settings, self.secrets_file)
        shutil.copytree(root / "var/lib/asterisk", self.state / "lib", symlinks=True)
        for name in ("run", "spool", "log"):
            (self.state / name).mkdir()
        (self.state / "spool" / "recordings").mkdir()
        for name in INSTANCE_DIRS:
            for path in [self.state / name, *(self.state / name).rglob("*")]:
                os.lchown(path, uid, gid)
        self.settings_file.write_text(json.dumps(settings, indent=2))
        for target in INSTANCE_DIRS.values():
            (root / target.lstrip("/")).mkdir(parents=True, exist_ok=True)
        mounts = ["mount --bind /proc proc", "mount --bind /dev dev"]
        mounts += [f"mount --bind {self.state / name} {target.lstrip('/')}" for name, target in INSTANCE_DIRS.items()]
        if recordings is not None:
            os.chown(recordings, uid, gid)
            mounts.append(f"mount --bind {recordings} var/spool/asterisk/recordings")
        script = f"cd {root} && " + " && ".join(mounts) + f" && exec chroot {root} asterisk -f -U asterisk -G asterisk"
        console = open(self.state / "console.log", "ab")
        process = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(str(process.pid))
        self._wait_booted(process, boot_timeout)

    def _wait_booted(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SandboxError(f"Asterisk exited with {process.returncode}; see {self.state / 'console.log'}")
            try:
                # process.pid, not self.pid(): while the child execs, its cmdline can read empty.
                result = self.rx("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()),
                                 pid=process.pid)
            except subprocess.TimeoutExpired:
                break
            if result.returncode == 0 and "fully booted" in result.stdout.lower():
                return
            time.sleep(0.1)
        self.stop()
        raise SandboxError(f"Asterisk did not boot within {timeout:.0f} s; see {self.state / 'console.log'}")

    def stop(self, timeout: float = 15) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            self.rx("core stop now", timeout=5)
        except (subprocess.TimeoutExpired, SandboxError):
            pass
        if not _wait_gone(pid, timeout):
            os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)

    def environment(self) -> dict[str, str]:
        settings = self.settings()
        return {
            "CTL_ASTERISK_HOST": settings["BIND_ADDRESS"],
            "CTL_ASTERISK_PORT": settings["AMI_PORT"],
            "CTL_ASTERISK_USERNAME": "ctl",
            "CTL_ASTERISK_SECRET": load_secrets(self.secrets_file)["ami"],
            "CTL_MONITOR_AGI_HOST": settings["AGI_HOST"],
            "CTL_MONITOR_AGI_PORT": settings["AGI_PORT"],
            "CTL_MONITOR_AGI_SECRET": load_secrets(self.secrets_file)["agi"],
        }


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished == pid:
                return True
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the root is cached")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the cached root")
    start = commands.add_parser("start", help="render configs into the state dir and boot Asterisk")
    start.add_argument("--state", type=Path, required=True)
    start.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="config token, e.g. SIP_PORT=5160 AMI_PORT=5138 CLIENTS_PORT=5170")
    start.add_argument("--boot-timeout", type=float, default=60)
    for name in ("stop", "status", "env"):
        commands.add_parser(name).add_argument("--state", type=Path, required=True)
    rx = commands.add_parser("rx", help="run an Asterisk CLI command")
    rx.add_argument("--state", type=Path, required=True)
    rx.add_argument("cli", nargs="+")
    install = commands.add_parser("install-conf", help="render the configs for a real deployment")
    install.add_argument("--dest", type=Path, required=True, help="e.g. /etc/asterisk")
    install.add_argument("--secrets", type=Path, help="secrets file (default DEST/ctl-secrets)")
    install.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            print(build_root(args.cache))
        elif args.command == "install-conf":
            settings = parse_settings(args.set, {**DEFAULTS, "SIP_PORT": "5060", "AMI_PORT": "5038",
                                                 "RTP_START": "10000", "RTP_END": "20000",
                                                 "CLIENTS_PORT": "5060", "SYSTEM_NAME": "ctl"})
            secrets_path = args.secrets or args.dest / "ctl-secrets"
            render_tree(args.dest, settings, secrets_path)
            print(f"installed into {args.dest}; secrets in {secrets_path} (mode 600): give ctl "
                  "CTL_ASTERISK_SECRET=<ami> and CTL_MONITOR_AGI_SECRET=<agi> from it; files holding "
                  "secrets are mode 640" + ("" if _asterisk_group() is not None else
                                            " (no asterisk group here: run Asterisk as their owner)"))
        else:
            instance = Instance(args.state, args.cache)
            if args.command == "start":
                instance.start(parse_settings(args.set, DEFAULTS), args.boot_timeout)
                settings = instance.settings()
                print(f"Asterisk is up: SIP {settings['BIND_ADDRESS']}:{settings['SIP_PORT']}, "
                      f"AMI {settings['BIND_ADDRESS']}:{settings['AMI_PORT']}")
            elif args.command == "stop":
                print("stopped" if instance.stop() else "not running")
            elif args.command == "status":
                if instance.pid() is None:
                    print("not running")
                    return 1
                result = instance.rx("core show uptime")
                print(result.stdout.strip())
                return result.returncode
            elif args.command == "rx":
                result = instance.rx(" ".join(args.cli))
                sys.stdout.write(result.stdout)
                return result.returncode
            elif args.command == "env":
                for key, value in instance.environment().items():
                    print(f"export {key}={value}")
    except SandboxError as error:
        print(f"asterisk_sandbox: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
