"""The `ctl` command line, in process (CliRunner) on an SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ctl.cli import cli


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key in [k for k in __import__("os").environ if k.startswith("CTL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CTL_DATABASE_URL", f"sqlite:///{tmp_path / 'ctl.db'}")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def test_operators_add_list_remove(run) -> None:  # type: ignore[no-untyped-def]
    assert run("operator", "add", "101", "--name", "Анна Петрова").exit_code == 0
    added = run("operator", "add", "200", "--name", "Sam", "--role", "Supervisor", "--dial-string", "PJSIP/200",
                "--json")
    assert json.loads(added.output) == {"extension": "200", "name": "Sam", "role": "supervisor",
                                        "dial_string": "PJSIP/200", "status": "offline"}
    listed = json.loads(run("operator", "list", "--json").output)
    assert [(o["extension"], o["dial_string"]) for o in listed] == [("101", "PJSIP/101"), ("200", "PJSIP/200")]
    table = run("operator", "list").output
    assert "Анна Петрова" in table and table.splitlines()[0].split()[:3] == ["EXTENSION", "NAME", "ROLE"]
    assert run("operator", "remove", "101").exit_code == 0
    assert [o["extension"] for o in json.loads(run("operator", "list", "--json").output)] == ["200"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["operator", "add", "101", "--name", "X", "--role", "king"], 2, "role: 'king' is not one of"),
    (["operator", "add", "101", "--name", "X", "--dial-string", "PJSIP/1,30"], 2, "is not a dial string"),
    (["operator", "add", "101", "--name", "  "], 2, "name: must not be empty"),
    (["operator", "remove", "555"], 4, "no operator with extension 555"),
    (["project", "add", "P", "--result", "a b"], 2, "result code: 'a b' must be"),
    (["project", "add", "P", "--result", "x", "--result", "x"], 2, "result code 'x' given twice"),
    (["project", "add", "P", "--member", "999"], 4, "no operator with extension 999"),
    (["project", "show", "Nope"], 4, "no project named 'Nope'"),
    (["call", "show", "42"], 4, "no call with id 42"),
])
def test_errors_are_one_line_with_an_exit_code_and_write_nothing(run, args: list[str], code: int,  # type: ignore[no-untyped-def]
                                                                 message: str) -> None:
    result = run(*args)
    assert result.exit_code == code
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctl: ") and message in lines[0]
    assert json.loads(run("operator", "list", "--json").output) == []
    assert json.loads(run("project", "list", "--json").output) == []


def test_json_errors_name_their_kind(run) -> None:  # type: ignore[no-untyped-def]
    result = run("call", "show", "42", "--json")
    assert result.exit_code == 4
    assert json.loads(result.output.splitlines()[0]) == {"error": "not_found", "message": "no call with id 42"}


def test_duplicate_operator_is_a_conflict(run) -> None:  # type: ignore[no-untyped-def]
    run("operator", "add", "101", "--name", "A")
    result = run("operator", "add", "101", "--name", "B")
    assert result.exit_code == 8 and "operator 101 already exists" in result.output
    assert [o["name"] for o in json.loads(run("operator", "list", "--json").output)] == ["A"]


def test_projects_with_script_results_and_members(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("operator", "add", "101", "--name", "A")
    script = tmp_path / "script.txt"
    script.write_text("Здравствуйте!\nThis is ACME.\n", encoding="utf-8")
    added = run("project", "add", "Sales", "--script-file", str(script), "--result", "sale:Sale made:success",
                "--result", "callback:Call back", "--member", "101")
    assert added.exit_code == 0, added.output
    shown = json.loads(run("project", "show", "Sales", "--json").output)
    assert shown["script"] == "Здравствуйте!\nThis is ACME."
    assert shown["members"] == ["101"]
    assert shown["result_codes"] == [{"code": "callback", "label": "Call back", "successful": False},
                                     {"code": "sale", "label": "Sale made", "successful": True}]
    text = run("project", "show", "Sales").output
    assert "sale             Sale made  (successful)" in text and "  Здравствуйте!" in text


def test_bad_config_is_exit_2(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text("[asterisk]\nport = 'x'\n")
    result = run("--config", str(bad), "operator", "list")
    assert result.exit_code == 2
    assert result.output.strip() == f"ctl: {bad}: [asterisk] port: expected int, got 'x'"


def test_call_list_empty_and_version(run) -> None:  # type: ignore[no-untyped-def]
    assert run("call", "list").output.strip() == "(none)"
    assert json.loads(run("call", "list", "--active", "--json").output) == []
    assert "ctl, version" in run("--version").output


def test_call_card_comment_and_review(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from ctl.store.engine import Store
    from ctl.store.models import Call

    store = Store(f"sqlite:///{tmp_path / 'ctl.db'}")
    with store.transaction() as session:
        session.add(Call(node="n", pbx_call_id="x", direction="outbound", state="ended",
                         created_at=datetime.now(UTC), result="sale"))
    store.dispose()
    assert run("call", "comment", "1", "Rude to the client;\nneeds coaching").exit_code == 0
    assert run("call", "flag", "1", "--review").exit_code == 0
    shown = json.loads(run("call", "show", "1", "--json").output)
    assert (shown["comment"], shown["review"], shown["result"]) == ("Rude to the client;\nneeds coaching", True, "sale")
    assert json.loads(run("call", "flag", "1", "--no-review", "--json").output) == {"id": 1, "review": False}
    assert run("call", "comment", "1", "").exit_code == 0
    assert json.loads(run("call", "show", "1", "--json").output)["comment"] is None
    bad = run("call", "comment", "1", "bell\x07")
    assert bad.exit_code == 2 and "control character" in bad.output
    assert run("call", "comment", "7", "x").exit_code == 4


def test_project_recording_options_and_record_commands(run, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    from ctl.store.engine import Store
    from ctl.store.models import Call, Recording

    added = json.loads(run("project", "add", "Sales", "--recording", "on-demand", "--stereo", "--json").output)
    assert (added["recording"], added["stereo"], added["record_supervisor"]) == ("on-demand", True, False)
    bad = run("project", "add", "Other", "--recording", "sometimes")
    assert bad.exit_code == 2 and "--recording: expected always, on-demand or never" in bad.output
    assert json.loads(run("project", "list", "--json").output)[0]["name"] == "Sales"  # Other was not added
    changed = json.loads(run("project", "set", "Sales", "--recording", "never", "--stereo-default",
                             "--record-supervisor", "--json").output)
    assert (changed["recording"], changed["stereo"], changed["record_supervisor"]) == ("never", None, True)
    assert run("project", "set", "Sales").exit_code == 2  # nothing to change
    assert "recording never (default format, supervisor mixed in)" in run("project", "show", "Sales").output

    old = datetime.now(UTC) - timedelta(days=40)
    wav = tmp_path / "call-1.wav"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00"
                    b"\x02\x00\x10\x00data\x00\x00\x00\x00")
    store = Store(f"sqlite:///{tmp_path / 'ctl.db'}")
    with store.transaction() as session:
        call = Call(node="asterisk", pbx_call_id="x", direction="outbound", state="ended", created_at=old,
                    ended_at=old)
        session.add(call)
        session.flush()
        session.add(Recording(call_id=call.id, node="asterisk", channel_id="c", channel_name="PJSIP/c-1",
                              path=str(wav),
                              pbx_path=str(wav), state="stopped", source="policy", started_at=old, stopped_at=old,
                              size_bytes=44, duration_ms=0, complete=True))
    store.dispose()
    shown = json.loads(run("call", "show", "1", "--json").output)
    assert (shown["recording_state"], shown["recording_complete"]) == ("stopped", True)
    assert json.loads(run("record", "list", "--json").output)[0]["size_bytes"] == 44
    for args, code, message in ((["record", "start", "9"], 4, "no call with id 9"),
                                (["record", "pause", "1"], 8, "recording is stopped"),
                                (["record", "purge", "--older-than", "-1"], 2, "-1 is not in the range"),
                                (["call", "recording", "1", "-o", str(tmp_path)], 8, "already exists")):
        result = run(*args)
        assert result.exit_code == code and message in result.output, (args, result.output)
    monkeypatch.setenv("CTL_RECORDING_DIRECTORY", str(tmp_path))  # purge deletes only inside it
    dry = json.loads(run("record", "purge", "--older-than", "30", "--dry-run", "--json").output)
    assert dry["dry_run"] is True and [r["call"] for r in dry["recordings"]] == [1] and wav.exists()
    assert "1 recordings, 44 bytes purged" in run("record", "purge", "--older-than", "30").output
    assert not wav.exists()
    gone = run("call", "recording", "1", "-o", str(tmp_path / "out.wav"))
    assert gone.exit_code == 4 and "was purged" in gone.output


def test_statuses_results_and_blacklist_from_the_command_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from ctl.store.engine import Store
    from ctl.store.models import Call

    run("operator", "add", "101", "--name", "Anna")
    run("project", "add", "Sales", "--result", "sale:Sale:success", "--member", "101")
    assert json.loads(run("operator", "status", "101", "--json").output)["status"] == "offline"
    shown = json.loads(run("operator", "status", "101", "break", "--reason", "lunch", "--json").output)
    assert (shown["status"], shown["reason"], shown["changed"]) == ("break", "lunch", True)
    assert "101: available since" in run("operator", "status", "101", "available").output
    bad = run("operator", "status", "101", "break", "--reason", "nap")
    assert bad.exit_code == 2 and "'nap' is not a pause reason" in bad.output
    history = json.loads(run("operator", "history", "101", "--json").output)
    assert [(h["from"], h["to"], h["reason"]) for h in history] == [("break", "available", None),
                                                                   ("offline", "break", "lunch")]

    store = Store(f"sqlite:///{tmp_path / 'ctl.db'}")
    with store.transaction() as session:
        session.add(Call(node="n", pbx_call_id="x", direction="outbound", state="ended", project_id=1,
                         created_at=datetime.now(UTC)))
    store.dispose()
    saved = json.loads(run("call", "result", "1", "sale", "--comment", "done", "--json").output)
    assert saved == {"id": 1, "result": "sale", "label": "Sale", "successful": True, "operator": None,
                     "operator_status": None}
    refused = run("call", "result", "1", "nope")
    assert refused.exit_code == 6 and "has no result code 'nope'" in refused.output

    assert run("blacklist", "add", "+7 (999) 000-11-22", "--reason", "asked").exit_code == 0
    assert json.loads(run("blacklist", "list", "--json").output)[0]["number"] == "79990001122"
    dialed = run("call", "bridge", "--operator", "101", "--to", "+79990001122")
    assert dialed.exit_code == 6 and "blacklisted: asked" in dialed.output
    assert run("blacklist", "add", "79990001122").exit_code == 8
    assert run("blacklist", "remove", "123").exit_code == 4
    assert run("blacklist", "remove", "+79990001122").exit_code == 0  # a leading + or not: one number
    assert json.loads(run("blacklist", "list", "--json").output) == []


def test_queues_logout_and_tasks_from_the_command_line(run) -> None:  # type: ignore[no-untyped-def]
    for extension, role in (("101", "operator"), ("102", "operator"), ("201", "admin")):
        assert run("operator", "add", extension, "--name", f"P{extension}", "--role", role).exit_code == 0
    added = run("project", "add", "Sales", "--member", "101", "--queue", "sales", "--wrapup-seconds", "45")
    assert added.exit_code == 0
    shown = json.loads(run("project", "set", "Sales", "--add-member", "102", "--json").output)
    assert (shown["queue"], shown["wrapup_seconds"], shown["members"]) == ("sales", 45, ["101", "102"])
    assert "queue     sales" in run("project", "show", "Sales").output
    for args, code, message in (
            (["project", "set", "Sales", "--queue", "a b"], 2, "not a queue name"),
            (["project", "set", "Sales", "--queue", "x", "--no-queue"], 2, "not both"),
            (["project", "set", "Sales", "--wrapup-seconds", "-3"], 2, "0 to 86400"),
            (["project", "set", "Sales", "--remove-member", "201"], 4, "not a member"),
            (["project", "add", "Other", "--queue", "sales"], 8, "already belongs to project 'Sales'"),
            (["operator", "logout", "101", "--force", "--by", "102"], 6, "may not log another person out"),
            (["task", "add", "--number", "+7999", "--at", "yesterday"], 2, "--at"),
            (["task", "add", "--number", "+7999", "--at", "2020-01-01T10:00"], 2, "in the past"),
            (["task", "add", "--at", "+1m"], 2, "one of them"),
            (["task", "add", "--number", "+7999", "--at", "+1m", "--auto"], 2, "--auto needs a project"),
            (["task", "add", "--number", "+7999", "--at", "+1m", "--tz", "Nowhere/Land"], 2, "not a time zone"),
            (["task", "done", "7"], 4, "no task with id 7"),
            (["task", "list", "--state", "finished"], 2, "--state")):
        result = run(*args)
        assert (result.exit_code, len(result.output.strip().splitlines())) == (code, 1), (args, result.output)
        assert message in result.output, (args, result.output)
    assert json.loads(run("task", "list", "--json").output) == []  # the refusals wrote nothing
    added = json.loads(run("task", "add", "--number", "+7 999 123", "--at", "+10m", "--assignee", "101", "--auto",
                           "--project", "Sales", "--json").output)
    assert (added["number"], added["state"], added["auto"], added["assignee"]) == ("+7999123", "pending", True, "101")
    assert json.loads(run("task", "cancel", str(added["id"]), "--json").output)["state"] == "cancelled"
    assert run("task", "cancel", str(added["id"])).exit_code == 8
    out = json.loads(run("operator", "logout", "101", "--force", "--by", "201", "--json").output)
    assert (out["status"], out["reason"]) == ("offline", "forced logout")


def test_operator_import_from_the_command_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text("extension,name,role\n110,Anna,operator\n111,Boris,wizard\n", encoding="utf-8")
    result = run("operator", "import", str(bad))
    assert result.exit_code == 2 and result.output.strip() == \
        "ctl: line 3: role: 'wizard' is not one of owner, admin, supervisor, operator"
    assert json.loads(run("operator", "list", "--json").output) == []
    good = tmp_path / "good.csv"
    good.write_text("extension;name\n110;Anna\n111;Boris\n", encoding="utf-8")
    assert json.loads(run("operator", "import", str(good), "--delimiter", ";", "--json").output) == \
        {"added": 2, "memberships": 0}
    assert [o["extension"] for o in json.loads(run("operator", "list", "--json").output)] == ["110", "111"]


def test_import_reads_no_more_than_its_limit_and_only_regular_files(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("operator", "import", "/dev/zero")  # would never end if read whole
    assert result.exit_code == 2 and "not a regular file" in result.output
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        handle.write(b"extension,name\n")
        handle.seek(64 * 1024 * 1024)  # sparse: 64 MB that cost nothing to make
        handle.write(b"\n")
    result = run("operator", "import", str(big))
    assert result.exit_code == 2 and "larger than 5 MB" in result.output


def test_tokens_are_shown_once_listed_without_the_secret_and_revoked(run) -> None:  # type: ignore[no-untyped-def]
    assert run("operator", "add", "200", "--name", "Sam", "--role", "supervisor").exit_code == 0
    created = json.loads(run("token", "create", "200", "--name", "crm", "--expires", "30d", "--json").output)
    secret = created["token"]
    assert secret.startswith("ctl_") and created["state"] == "active" and created["extension"] == "200"
    text = run("token", "create", "200").output
    assert text.startswith("ctl_") and "shown once" in text
    listed = run("token", "list").output
    assert secret not in listed and created["prefix"] in listed and "crm" in listed
    assert "revoked token 1" in run("token", "revoke", "1").output
    states = {t["id"]: t["state"] for t in json.loads(run("token", "list", "--json").output)}
    assert states == {1: "revoked", 2: "active"}
    again = run("token", "revoke", "1")
    assert again.exit_code == 8 and "already revoked" in again.output
    bad = run("token", "create", "200", "--expires", "forever")
    assert bad.exit_code == 2 and "--expires" in bad.output
    assert run("token", "create", "999").exit_code == 4


def test_webhooks_are_added_listed_without_their_secret_and_removed(run) -> None:  # type: ignore[no-untyped-def]
    added = json.loads(run("webhook", "add", "https://crm.example/ctl", "--events", "call.*,monitor.*",
                           "--json").output)
    assert added["id"] == 1 and added["events"] == "call.*,monitor.*" and len(added["secret"]) >= 32
    given = run("webhook", "add", "http://127.0.0.1:9/x", "--secret", "0123456789abcdef")
    assert given.exit_code == 0 and "shown once" not in given.output
    listed = run("webhook", "list").output
    assert "crm.example" in listed and added["secret"] not in listed
    assert run("webhook", "deliveries", "--failed").output.strip() == "(none)"
    assert "removed webhook 1" in run("webhook", "remove", "1").output
    assert run("webhook", "remove", "1").exit_code == 4
    bad = run("webhook", "add", "gopher://x", "--events", "*")
    assert bad.exit_code == 2 and "http://" in bad.output
