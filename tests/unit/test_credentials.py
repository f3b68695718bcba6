"""Credentials and what ctl refuses at start: empty and well-known secrets (before any I/O),
a feature-code server without its secret, wildcard binds said out loud, installed configs
that hold secrets readable by the asterisk group only, dial strings ctl could not follow."""

from __future__ import annotations

import importlib.util
import logging
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ctl.asterisk.switch import AsteriskSwitch
from ctl.config import AsteriskSettings, FreeswitchSettings, MonitorSettings, Settings, load_settings
from ctl.daemon import _warn_wildcard_binds, serve
from ctl.errors import ConfigError, ValidationError
from ctl.freeswitch.switch import FreeswitchSwitch
from ctl.validation import check_person_dial_string

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("secret", ["", "   ", "ClueCon", "cluecon", "CHANGE-ME", "changeme", "amp111", "short"])
async def test_the_asterisk_adapter_refuses_empty_and_known_secrets_before_any_io(secret: str) -> None:
    # Port 9 (discard) on a documentation address: a connection attempt would time out, not fail at once.
    switch = AsteriskSwitch(AsteriskSettings(host="192.0.2.1", port=9, secret=secret, connect_timeout=30))
    with pytest.raises(ConfigError, match=r"\[asterisk\] secret"):
        await switch.connect()


@pytest.mark.parametrize("password", ["", "ClueCon", "CHANGE-ME", "pw"])
async def test_the_freeswitch_adapter_refuses_empty_and_known_passwords(password: str) -> None:
    switch = FreeswitchSwitch(FreeswitchSettings(host="192.0.2.1", port=9, password=password, connect_timeout=30))
    with pytest.raises(ConfigError, match=r"\[freeswitch\] password"):
        await switch.connect()


@pytest.mark.parametrize(("environ", "message"), [
    ({}, r"\[monitor\] agi_secret: must be set"),
    ({"CTL_MONITOR_AGI_SECRET": "CHANGE-ME"}, "well-known default"),
    ({"CTL_MONITOR_AGI_SECRET": "short-secret"}, "16-128 letters"),
    ({"CTL_MONITOR_AGI_SECRET": "a/long/enough/secret/with/slashes"}, "16-128 letters"),
    ({"CTL_ASTERISK_HOST": "", "CTL_FREESWITCH_HOST": "127.0.0.1", "CTL_FREESWITCH_PASSWORD": "fs-password-ok",
      "CTL_FREESWITCH_OUTBOUND_SECRET": "ClueCon"}, r"\[freeswitch\] outbound_secret"),
])
async def test_serve_refuses_to_start_without_the_feature_code_secret(environ: dict[str, str], message: str,
                                                                       tmp_path: Path) -> None:
    settings = load_settings(environ={"CTL_DATABASE_URL": f"sqlite:///{tmp_path / 'ctl.db'}",
                                      "CTL_ASTERISK_SECRET": "ami-secret-for-tests", **environ})
    with pytest.raises(ConfigError, match=message):
        await serve(settings)
    assert not (tmp_path / "ctl.db").exists()  # refused before the store was even opened


def test_wildcard_binds_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    _warn_wildcard_binds(Settings())
    assert not caplog.records
    _warn_wildcard_binds(replace(Settings(), monitor=MonitorSettings(agi_host="0.0.0.0")))
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "[monitor] agi_host" in record.getMessage()


def test_allowlists_must_be_addresses() -> None:
    with pytest.raises(ConfigError, match=r"\[monitor\] agi_allow: 'localhost' is not an IP address"):
        load_settings(environ={"CTL_MONITOR_AGI_ALLOW": "127.0.0.1,localhost"})
    with pytest.raises(ConfigError, match=r"\[monitor\] foreign_spy: expected hangup or log"):
        load_settings(environ={"CTL_MONITOR_FOREIGN_SPY": "ignore"})
    assert load_settings(environ={"CTL_MONITOR_AGI_ALLOW": "127.0.0.1, 10.0.0.0/8"}).monitor.agi_allow == (
        "127.0.0.1", "10.0.0.0/8")


def _sandbox_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("asterisk_sandbox", ROOT / "scripts" / "asterisk_sandbox.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["asterisk_sandbox"] = module
    spec.loader.exec_module(module)
    return module


def test_install_conf_renders_files_with_secrets_private(tmp_path: Path) -> None:
    """install-conf wrote manager.conf and pjsip.conf, secrets included, mode 0644."""
    sandbox = _sandbox_module()
    dest = tmp_path / "etc"
    assert sandbox.main(["install-conf", "--dest", str(dest)]) == 0
    modes = {path.relative_to(dest).as_posix(): stat.S_IMODE(path.stat().st_mode)
             for path in dest.rglob("*") if path.is_file()}
    for private in ("manager.conf", "pjsip.conf", "extensions.conf", "ctl-secrets"):
        assert modes[private] & 0o007 == 0, (private, oct(modes[private]))
    assert modes["modules.conf"] == 0o644
    secrets = sandbox.load_secrets(dest / "ctl-secrets")
    assert len(secrets["agi"]) == 32
    assert f"/{secrets['agi']}" in (dest / "extensions.conf").read_text()  # CTL_AGI carries the secret
    assert not list(dest.glob(".*.new"))  # no temporary file left behind


@pytest.mark.parametrize(("dial", "extension", "message"), [
    ("loopback/101/default", "101", "cannot be followed or monitored"),  # finding 13
    ("Local/101@ctl-phones", "101", "cannot be followed or monitored"),
    ("IAX2/101", "101", "cannot be followed or monitored"),
    ("PJSIP/101@clients", "101", "cannot be followed or monitored"),  # endpoint clients, user 101
    ("PJSIP/102", "101", "reaches phone 102, not extension 101"),
    ("user/102@ctl.local", "101", "reaches phone 102"),
])
def test_a_dial_string_ctl_could_not_monitor_is_refused_when_the_person_is_added(dial: str, extension: str,
                                                                                  message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_person_dial_string(dial, extension)


@pytest.mark.parametrize("dial", ["PJSIP/101", "user/101", "user/101@ctl.local", "sofia/internal/101@10.0.0.5"])
def test_the_dial_strings_of_phones_are_accepted(dial: str) -> None:
    assert check_person_dial_string(dial, "101") == dial
