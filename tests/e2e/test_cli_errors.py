"""CLI errors against the real Asterisk: one clear line, a non-zero exit, nothing written."""

from __future__ import annotations

import json
import socket

import pytest

from ctl.store.engine import Store
from ctl.store.models import Call
from tests.e2e.conftest import CtlRunner, Phones


def _calls_in_store(ctl: CtlRunner) -> int:
    store = Store(ctl.url)
    try:
        with store.transaction() as session:
            return session.query(Call).count()
    finally:
        store.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("args", "code", "kind", "message"), [
    (["--operator", "109", "--to", "79991234567"], 4, "not_found", "ctl: no operator with extension 109"),
    (["--operator", "101", "--to", "79-ab-12"], 2, "invalid",
     "ctl: --to: '79-ab-12' is not a phone number (3–20 digits, optional leading +)"),
    (["--operator", "101", "--to", "7999\r\nAction: Hangup"], 2, "invalid", "is not a phone number"),
    (["--operator", "101", "--to", "79991234567", "--project", "Nope"], 4, "not_found",
     "ctl: no project named 'Nope'"),
    (["--operator", "1x", "--to", "79991234567"], 2, "invalid", "ctl: extension: '1x' is not an extension"),
])
def test_bad_bridge_requests_write_nothing(ctl: CtlRunner, args: list[str], code: int, kind: str,
                                           message: str) -> None:
    result = ctl.run("call", "bridge", *args, "--json", check=False)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert json.loads(result.stdout)["error"] == kind
    assert _calls_in_store(ctl) == 0


def test_unreachable_pbx_is_one_line_and_exit_3(ctl: CtlRunner) -> None:
    port = _closed_port()
    ctl.env["CTL_ASTERISK_PORT"] = str(port)
    result = ctl.run("call", "bridge", "--operator", "101", "--to", "79991234567", check=False)
    assert result.returncode == 3
    assert result.stderr.strip() == f"ctl: cannot reach Asterisk AMI at 127.0.0.1:{port}: connection refused"
    assert _calls_in_store(ctl) == 0


def test_wrong_ami_secret_is_one_line_and_exit_3(ctl: CtlRunner) -> None:
    ctl.env["CTL_ASTERISK_SECRET"] = "wrong-but-long-enough"
    result = ctl.run("call", "bridge", "--operator", "101", "--to", "79991234567", check=False)
    assert result.returncode == 3
    assert "refused the AMI login of user 'ctl': Authentication failed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _calls_in_store(ctl) == 0


@pytest.mark.parametrize("secret", ["", "CHANGE-ME", "ClueCon"])
def test_empty_and_known_default_secrets_are_refused_before_any_login(ctl: CtlRunner, secret: str) -> None:
    ctl.env["CTL_ASTERISK_SECRET"] = secret
    result = ctl.run("call", "bridge", "--operator", "101", "--to", "79991234567", check=False)
    assert result.returncode == 2
    assert "[asterisk] secret" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _calls_in_store(ctl) == 0


def test_operator_phone_not_registered_is_refused_before_anything_is_written(ctl: CtlRunner) -> None:
    # 102 exists in the store but no phone registered for it on this Asterisk.
    result = ctl.run("call", "bridge", "--operator", "102", "--to", "79991234567", check=False)
    assert result.returncode == 6
    assert result.stderr.strip() == ("ctl: operator 102's phone (PJSIP/102) is not reachable: "
                                     "not registered or unavailable")
    assert _calls_in_store(ctl) == 0


def test_operator_not_in_the_project_is_refused(ctl: CtlRunner, phones: Phones) -> None:
    ctl.run("operator", "add", "103", "--name", "Outsider")
    phones.phone("103", "answer")
    result = ctl.run("call", "bridge", "--operator", "103", "--to", "79991234567", "--project", "Sales",
                     check=False)
    assert result.returncode == 6
    assert result.stderr.strip() == "ctl: operator 103 is not a member of project 'Sales'"
    assert _calls_in_store(ctl) == 0


def test_store_not_migrated_is_exit_5(ctl: CtlRunner, tmp_path: object) -> None:
    ctl.env["CTL_DATABASE_URL"] = ctl.url.replace("ctl.db", "empty.db")
    result = ctl.run("call", "list", check=False)
    assert result.returncode == 5
    assert "is empty; run `ctl db upgrade` first" in result.stderr
