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


def _preprocessor_sets(path: Path) -> dict[str, str]:
    """The defaults (`set`) and environment overrides (`env-set`) a file gives FreeSWITCH."""
    found: dict[str, str] = {}
    for cmd, data in re.findall(r'<X-PRE-PROCESS cmd="(set|env-set)" data="([^"]*)"/>', path.read_text()):
        name, _, value = data.partition("=")
        found[f"{cmd}:{name}"] = value
    return found


def test_the_standalone_configuration_binds_to_loopback_unless_told() -> None:
    sets = _preprocessor_sets(ROOT / "freeswitch_conf" / "freeswitch.xml")
    assert sets["set:ctl_sip_ip"] == "127.0.0.1" and sets["set:domain"] == "127.0.0.1"
    for name in ("sip_profiles/ctl-phones-profile.xml", "sip_profiles/ctl-clients-profile.xml"):
        profile = ET.parse(ROOT / "freeswitch_conf" / name).getroot()
        params = {p.get("name"): p.get("value") for p in profile.iter("param")}
        assert params["sip-ip"] == params["rtp-ip"] == "$${ctl_sip_ip}", name
    phones = {p.get("name"): p.get("value")
              for p in ET.parse(ROOT / "freeswitch_conf/sip_profiles/ctl-phones-profile.xml").getroot().iter("param")}
    assert phones["auth-calls"] == "true"  # ctl knows a feature code's caller by the digest user


def test_freeswitch_reads_the_same_environment_names_as_ctl() -> None:
    """One CTL_FREESWITCH_PASSWORD / _PORT / _OUTBOUND_* serves ctl and the event socket."""
    sets = _preprocessor_sets(ROOT / "freeswitch_conf" / "vars-ctl.xml")
    assert sets["env-set:ctl_esl_password"] == "$CTL_FREESWITCH_PASSWORD"
    assert sets["env-set:ctl_esl_port"] == "$CTL_FREESWITCH_PORT"
    assert sets["env-set:ctl_outbound_host"] == "$CTL_FREESWITCH_OUTBOUND_HOST"
    assert sets["env-set:ctl_outbound_port"] == "$CTL_FREESWITCH_OUTBOUND_PORT"
    from ctl.config import FreeswitchSettings

    defaults = FreeswitchSettings()
    assert sets["set:ctl_esl_port"] == str(defaults.port)
    assert (sets["set:ctl_outbound_host"], sets["set:ctl_outbound_port"]) == (
        defaults.outbound_host, str(defaults.outbound_port))
    assert sets["set:ctl_esl_password"] == "CHANGE-ME"


def test_the_standalone_loads_what_ctl_uses() -> None:
    root = ET.parse(ROOT / "freeswitch_conf/autoload_configs/modules.conf.xml").getroot()
    modules = {m.get("module") for m in root.iter("load")}
    assert modules >= {"mod_event_socket", "mod_sofia", "mod_commands", "mod_dptools", "mod_dialplan_xml",
                       "mod_callcenter", "mod_sndfile"}
    assert (ROOT / "freeswitch_conf/dialplan/ctl.xml").resolve() == (ROOT / "dialplan/freeswitch/ctl.xml").resolve()


def test_queue_agents_are_named_like_extensions() -> None:
    root = ET.parse(ROOT / "freeswitch_conf/autoload_configs/callcenter.conf.xml").getroot()
    agents = {a.get("name"): a.get("contact") for a in root.iter("agent")}
    assert agents["101"] == "[call_timeout=15]user/101"
    tiers = {(t.get("agent"), t.get("queue")) for t in root.iter("tier")}
    assert ("101", "sales@default") in tiers
    dialplan = (ROOT / "dialplan/freeswitch/ctl.xml").read_text()
    assert 'data="sales@default"' in dialplan
