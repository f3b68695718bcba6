"""Which PBX a request goes to: the people's dial strings, else the row's node."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctl.asterisk import AsteriskSwitch
from ctl.cli import cli
from ctl.config import load_settings
from ctl.errors import ConfigError
from ctl.freeswitch.switch import FreeswitchSwitch
from ctl.pbx import configured_nodes, make_switch, node_of_dial_string

BOTH = {"CTL_FREESWITCH_HOST": "127.0.0.1", "CTL_FREESWITCH_PASSWORD": "fs-password-for-tests",
        "CTL_FREESWITCH_NODE": "fs1"}


def test_nodes_and_adapters() -> None:
    both = load_settings(environ=BOTH)
    assert configured_nodes(both) == ["asterisk", "fs1"]
    assert node_of_dial_string(both, "PJSIP/101") == "asterisk"
    assert node_of_dial_string(both, "user/101") == "fs1"
    assert node_of_dial_string(both, "sofia/gateway/clients/7999") == "fs1"
    assert isinstance(make_switch(both), AsteriskSwitch)
    assert isinstance(make_switch(both, "fs1"), FreeswitchSwitch)
    assert isinstance(make_switch(both, "asterisk"), AsteriskSwitch)
    with pytest.raises(ConfigError, match="not configured here"):
        make_switch(both, "elsewhere")
    asterisk_only = load_settings(environ={})
    with pytest.raises(ConfigError, match="no FreeSWITCH is configured"):
        node_of_dial_string(asterisk_only, "user/101")
    freeswitch_only = load_settings(environ={**BOTH, "CTL_ASTERISK_HOST": ""})
    assert isinstance(make_switch(freeswitch_only), FreeswitchSwitch)
    with pytest.raises(ConfigError, match="no Asterisk is configured"):
        node_of_dial_string(freeswitch_only, "PJSIP/101")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import os

    for key in [k for k in os.environ if k.startswith("CTL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CTL_DATABASE_URL", f"sqlite:///{tmp_path / 'ctl.db'}")
    for key, value in {**BOTH, "CTL_FREESWITCH_PORT": str(_closed_port()),
                       "CTL_ASTERISK_PORT": str(_closed_port()), "CTL_FREESWITCH_CONNECT_TIMEOUT": "1",
                       "CTL_ASTERISK_CONNECT_TIMEOUT": "1", "CTL_ASTERISK_SECRET": "ami-secret-for-tests"}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    for extension, dial, role in (("101", "user/101", "operator"), ("102", "PJSIP/102", "operator"),
                                  ("200", "user/200", "supervisor"), ("201", "PJSIP/201", "supervisor")):
        assert invoke("operator", "add", extension, "--name", f"P{extension}", "--dial-string", dial,
                      "--role", role).exit_code == 0
    return invoke


def test_a_freeswitch_operator_is_called_through_freeswitch(run) -> None:  # type: ignore[no-untyped-def]
    result = run("call", "bridge", "--operator", "101", "--to", "+79991234567", "--json")
    assert result.exit_code == 3 and "cannot reach FreeSWITCH" in result.output
    result = run("call", "bridge", "--operator", "102", "--to", "+79991234567", "--json")
    assert result.exit_code == 3 and "cannot reach Asterisk" in result.output
    assert json.loads(run("call", "list", "--json").output) == []  # nothing written


def test_a_supervisor_on_another_pbx_cannot_monitor(run) -> None:  # type: ignore[no-untyped-def]
    result = run("monitor", "listen", "101", "--by", "201")
    assert result.exit_code == 6 and "different PBXs" in result.output
    assert "101 on fs1" in result.output and "201 on asterisk" in result.output


def test_each_pbx_dials_clients_its_own_way() -> None:
    from ctl.services.calls import client_dial

    both = load_settings(environ=BOTH)
    assert client_dial(both, "asterisk", "+79991234567") == "PJSIP/+79991234567@clients"
    assert client_dial(both, "fs1", "+79991234567") == "sofia/gateway/clients/+79991234567"
    custom = load_settings(environ={**BOTH, "CTL_FREESWITCH_CLIENT_DIAL": "sofia/gateway/carrier2/{number}"})
    assert client_dial(custom, "fs1", "7999") == "sofia/gateway/carrier2/7999"
    with pytest.raises(ConfigError, match=r"\[freeswitch\] client_dial"):
        load_settings(environ={**BOTH, "CTL_FREESWITCH_CLIENT_DIAL": "sofia/gateway/clients/1,{number}"})
