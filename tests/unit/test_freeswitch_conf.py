"""freeswitch_conf/ and dialplan/freeswitch/: well-formed, loopback, no default password, the
feature codes mapped to the right modes and handed to ctl serve."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "freeswitch_conf").rglob("*.xml"), *(ROOT / "dialplan" / "freeswitch").glob("*.xml")])


def test_there_are_files() -> None:
    assert {p.name for p in FILES} >= {"ctl.xml", "event_socket.conf.xml", "vars-ctl.xml",
                                       "ctl-clients-gateway.xml"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_well_formed(path: Path) -> None:
    ET.parse(path)


def test_event_socket_is_loopback_with_ctls_password() -> None:
    root = ET.parse(ROOT / "freeswitch_conf" / "autoload_configs" / "event_socket.conf.xml").getroot()
    params = {p.get("name"): p.get("value") for p in root.iter("param")}
    assert params["listen-ip"] == "127.0.0.1"
    assert params["password"] == "$${ctl_esl_password}"
    assert params["apply-inbound-acl"] == "loopback.auto"
    assert "ClueCon" not in (ROOT / "freeswitch_conf" / "vars-ctl.xml").read_text().replace(
        "Never the default ClueCon", "")


def test_feature_codes_hand_the_call_to_ctl_serve_in_the_right_mode() -> None:
    root = ET.parse(ROOT / "dialplan" / "freeswitch" / "ctl.xml").getroot()
    phones = next(c for c in root.iter("context") if c.get("name") == "ctl-phones")
    found = {}
    for extension in phones.iter("extension"):
        condition = extension.find("condition")
        assert condition is not None
        actions = [(a.get("application"), a.get("data")) for a in condition.iter("action")]
        if ("socket", "$${ctl_outbound_address} async full") in actions:
            code = re.match(r"\^\\\*(\d{3})", condition.get("expression", ""))
            assert code is not None
            mode = dict(a for a in actions if a[0] == "set" and a[1] and a[1].startswith("ctl_monitor_mode="))
            found[code.group(1)] = mode["set"].split("=", 1)[1]
            assert ("set", "ctl_monitor_operator=$1") in actions
            assert actions[-1] == ("hangup", "CALL_REJECTED")  # ctl serve unreachable: rejected
    assert found == {"222": "listen", "223": "whisper", "224": "barge"}


def test_click_to_call_checks_the_dial_string_before_bridging() -> None:
    root = ET.parse(ROOT / "dialplan" / "freeswitch" / "ctl.xml").getroot()
    context = next(c for c in root.iter("context") if c.get("name") == "ctl-click-to-call")
    conditions = list(context.iter("condition"))
    pattern = re.compile(conditions[-1].get("expression", ""))
    assert pattern.fullmatch("sofia/gateway/clients/79991234567")
    for bad in ("sofia/gateway/clients/1,user/102", "user/1 2", "&eavesdrop(all)", "${x}"):
        assert not pattern.fullmatch(bad)
