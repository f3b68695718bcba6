from __future__ import annotations

import re
from pathlib import Path

import pytest

from ctl.config import load_settings
from ctl.errors import ConfigError


def test_defaults_without_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.database.url == "sqlite:///ctl.db"
    assert settings.calls.client_dial == "PJSIP/{number}@clients"
    assert settings.asterisk.port == 5038 and settings.source == "defaults"


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = tmp_path / "ctl.toml"
    path.write_text('[asterisk]\nhost = "10.0.0.5"\nport = 5039\ntrunks = ["carrier", "sbc"]\n'
                    '[calls]\nring_timeout = 20\n')
    settings = load_settings(path, environ={"CTL_ASTERISK_PORT": "6000", "CTL_ASTERISK_SECRET": "s3",
                                            "CTL_DATABASE_URL": "postgresql+psycopg://u@h/db",
                                            "CTL_ASTERISK_TRUNKS": "a, b", "CTL_SANDBOX_CACHE": "/x"})
    assert settings.asterisk.host == "10.0.0.5"
    assert settings.asterisk.port == 6000 and settings.asterisk.secret == "s3"
    assert settings.asterisk.trunks == ("a", "b")
    assert settings.calls.ring_timeout == 20
    assert settings.database.url.startswith("postgresql")


def test_ctl_config_variable_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[log]\nformat = "text"\n')
    assert load_settings(environ={"CTL_CONFIG": str(path)}).log.format == "text"


@pytest.mark.parametrize(("text", "environ", "message"), [
    ("[asterisk]\nprot = 1\n", {}, "unknown key [asterisk] prot"),
    ("[astersk]\nport = 1\n", {}, "unknown section [astersk]"),
    ("[asterisk]\nport = 'x'\n", {}, "[asterisk] port: expected int"),
    ("[asterisk\n", {}, "not valid TOML"),
    ("", {"CTL_ASTERISK_PORT": "abc"}, "CTL_ASTERISK_PORT: [asterisk] port: expected int"),
    ("", {"CTL_ASTERISK_PORT": "70000"}, "expected 1-65535"),
    ("", {"CTL_ASTERISK_NOPE": "1"}, "unknown key [asterisk] nope"),
    ("", {"CTL_ASTERISK_SECRET": "a\r\nAction: Originate"}, "control characters"),
    ("", {"CTL_CALLS_CLIENT_DIAL": "PJSIP/clients"}, "must contain {number} exactly once"),
    ("", {"CTL_CALLS_CLIENT_DIAL": "PJSIP/{number}@clients,30"}, "is not a dial string"),
    ("", {"CTL_LOG_LEVEL": "loud"}, "[log] level"),
    ("", {"CTL_RECORDING_POLICY": "sometimes"}, "[recording] policy: expected always, on-demand or never"),
    ("", {"CTL_RECORDING_DIRECTORY": "recordings"}, "[recording] directory: expected an absolute path"),
    ("", {"CTL_RECORDING_PBX_DIRECTORY": "/var/rec,x"}, "characters , | \" ' $ ( ) are not allowed"),
    ("", {"CTL_RECORDING_STEREO": "maybe"}, "[recording] stereo: expected bool"),
    ("[recording]\nstereo = 'yes'\n", {}, "[recording] stereo: expected bool"),
])
def test_bad_settings_are_one_clear_error(tmp_path: Path, text: str, environ: dict[str, str], message: str) -> None:
    path = tmp_path / "ctl.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ=environ)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_recording_settings_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "ctl.toml"
    path.write_text('[recording]\ndirectory = "/srv/rec"\nstereo = true\npolicy = "on-demand"\n')
    settings = load_settings(path, environ={"CTL_RECORDING_PBX_DIRECTORY": "/var/spool/asterisk/rec",
                                            "CTL_RECORDING_STEREO": "no"})
    recording = settings.recording
    assert (recording.directory, recording.policy, recording.stereo) == ("/srv/rec", "on-demand", False)
    assert recording.pbx_root == "/var/spool/asterisk/rec"
    assert load_settings(path, environ={}).recording.pbx_root == "/srv/rec"
    # The PBX is given paths the recording dialplan accepts: letters, digits, _ . / - only.
    for bad in ("/srv/my recordings", "/srv/rec:1", "/srv/réc"):
        with pytest.raises(ConfigError, match="letters, digits, _ . / - only"):
            load_settings(path, environ={"CTL_RECORDING_PBX_DIRECTORY": bad})
    with pytest.raises(ConfigError, match=r"\[recording\] directory"):
        load_settings(path, environ={"CTL_RECORDING_DIRECTORY": "/srv/my recordings"})


def test_freeswitch_settings_from_the_environment() -> None:
    settings = load_settings(environ={"CTL_FREESWITCH_HOST": "127.0.0.1", "CTL_FREESWITCH_PORT": "8022",
                                      "CTL_FREESWITCH_PASSWORD": "n0t-ClueCon", "CTL_FREESWITCH_NODE": "fs-a",
                                      "CTL_FREESWITCH_TRUNKS": "clients,carrier2"})
    fs = settings.freeswitch
    assert (fs.host, fs.port, fs.password, fs.node, fs.trunks) == ("127.0.0.1", 8022, "n0t-ClueCon", "fs-a",
                                                                    ("clients", "carrier2"))
    assert load_settings(environ={}).freeswitch.host == ""  # no FreeSWITCH node unless configured


@pytest.mark.parametrize(("environ", "message"), [
    ({"CTL_FREESWITCH_HOST": "127.0.0.1"}, "[freeswitch] password: required"),
    ({"CTL_FREESWITCH_PORT": "70000"}, "[freeswitch] port"),
    ({"CTL_FREESWITCH_PASSWORD": "a b"}, "spaces are not allowed"),
    ({"CTL_FREESWITCH_HOST": "h", "CTL_FREESWITCH_PASSWORD": "p", "CTL_FREESWITCH_NODE": "asterisk"},
     "also the Asterisk node"),
])
def test_bad_freeswitch_settings(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=environ)
