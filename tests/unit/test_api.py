"""The HTTP API in process (httpx's ASGI transport) against FakeSwitch, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ctl.api.app import create_app
from ctl.api.auth import LocalSocket
from ctl.config import CallSettings, Settings
from ctl.model import MonitorMode
from ctl.services.directory import add_operator
from ctl.services.tokens import create_token, revoke_token
from ctl.store.engine import Store
from ctl.testing import FakeSwitch


@pytest.fixture
def people(store: Store) -> dict[str, str]:
    """Operators 101 and 102, supervisor 200; a token for each."""
    tokens = {}
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("102", "operator"), ("200", "supervisor")):
            add_operator(session, CallSettings(), extension, f"Person {extension}", role, None)
        for extension in ("101", "102", "200"):
            tokens[extension] = create_token(session, extension, "test", timedelta(days=1)).token
    return tokens


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, Settings(), {"asterisk": FakeSwitch()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ctl") as http:
        yield http


@pytest.fixture
async def local(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """As over the Unix socket."""
    app = create_app(store, Settings(), {"asterisk": FakeSwitch()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=LocalSocket(app)),  # type: ignore[arg-type]
                                 base_url="http://ctl") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_request_over_tcp_needs_a_live_token(client: httpx.AsyncClient, people: dict[str, str],
                                                         store: Store) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("nonsense"), bearer("ctl_" + "A" * 43)):
        reply = await client.get("/api/v1/operators", headers=headers)
        assert reply.status_code == 401, (headers, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["www-authenticate"].startswith("Bearer")
        body = reply.json()
        assert body["kind"] == "unauthenticated" and body["status"] == 401 and body["detail"]
    with store.transaction() as session:
        revoke_token(session, 1)  # 101's
    reply = await client.get("/api/v1/operators", headers=bearer(people["101"]))
    assert reply.status_code == 401 and "revoked" in reply.json()["detail"]
    assert (await client.get("/api/v1/operators", headers=bearer(people["200"]))).status_code == 200


async def test_an_expired_token_is_refused(client: httpx.AsyncClient, store: Store,
                                           people: dict[str, str]) -> None:
    with store.transaction() as session:
        token = create_token(session, "200", "old", timedelta(minutes=1))
        token.row.expires_at = token.row.created_at - timedelta(seconds=1)
    reply = await client.get("/api/v1/operators", headers=bearer(token.token))
    assert reply.status_code == 401 and "expired" in reply.json()["detail"]


async def test_operators_see_themselves_and_supervisors_the_team(client: httpx.AsyncClient,
                                                                 people: dict[str, str]) -> None:
    team = (await client.get("/api/v1/operators", headers=bearer(people["200"]))).json()
    assert [p["extension"] for p in team] == ["101", "102", "200"]
    assert set(team[0]) >= {"extension", "name", "role", "dial_string", "status"}
    mine = (await client.get("/api/v1/operators", headers=bearer(people["101"]))).json()
    assert [p["extension"] for p in mine] == ["101"]
    assert (await client.get("/api/v1/operators/101", headers=bearer(people["101"]))).status_code == 200
    hidden = await client.get("/api/v1/operators/102", headers=bearer(people["101"]))
    assert hidden.status_code == 404 and hidden.json()["kind"] == "not_found"
    assert (await client.get("/api/v1/operators/102", headers=bearer(people["200"]))).json()["name"] == "Person 102"


async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient, people: dict[str, str]) -> None:
    reply = await client.get("/api/v1/operators/12ab", headers=bearer(people["200"]))
    assert reply.status_code == 422
    body = reply.json()
    assert body["kind"] == "invalid" and body["errors"][0]["field"] == "extension"


async def test_the_local_socket_needs_no_token(local: httpx.AsyncClient, people: dict[str, str]) -> None:
    reply = await local.get("/api/v1/operators")
    assert reply.status_code == 200 and len(reply.json()) == 3
    health = (await local.get("/api/v1/health")).json()
    assert health["nodes"] == {"asterisk": False}


async def test_the_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["info"]["title"] == "ctl"
    assert (await client.get("/api/v1/health")).status_code == 401
    assert "/api/v1/operators" in document["paths"] and "Problem" in document["components"]["schemas"]


def _bridged_call(store: Store, operator: str, pbx_id: str) -> int:
    from ctl.store.models import Call, Operator

    with store.transaction() as session:
        person = session.query(Operator).filter_by(extension=operator).one()
        call = Call(node="asterisk", pbx_call_id=pbx_id, direction="outbound", state="bridged",
                    operator_id=person.id, client_number="79991234567")
        session.add(call)
        session.flush()
        return call.id


def _legs(pbx_id: str) -> list[Any]:
    from ctl.model import ChannelInfo, ChannelState

    return [ChannelInfo(pbx_id, pbx_id, "PJSIP/101-00000001", "101", ChannelState.UP, "101", "b"),
            ChannelInfo(pbx_id, "c", "PJSIP/clients-00000002", "clients", ChannelState.UP, None, "b")]


@pytest.fixture
def pbx(store: Store) -> FakeSwitch:
    return FakeSwitch(node="asterisk", snapshot=_legs("one"))


@pytest.fixture
async def live(store: Store, pbx: FakeSwitch) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose PBX link is up, with a bridged call of operator 101."""
    await pbx.connect()
    app = create_app(store, Settings(), {"asterisk": pbx})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ctl") as http:
        yield http


async def test_calls_are_listed_to_the_team_and_to_their_own_operator(live: httpx.AsyncClient, store: Store,
                                                                      people: dict[str, str]) -> None:
    call_id = _bridged_call(store, "101", "one")
    team = (await live.get("/api/v1/calls?state=active", headers=bearer(people["200"]))).json()
    assert [(c["id"], c["operator"], c["client"], c["state"]) for c in team] == [(call_id, "101", "79991234567",
                                                                                  "bridged")]
    assert (await live.get("/api/v1/calls", headers=bearer(people["101"]))).json()[0]["id"] == call_id
    assert (await live.get("/api/v1/calls", headers=bearer(people["102"]))).json() == []
    card = await live.get(f"/api/v1/calls/{call_id}", headers=bearer(people["101"]))
    assert card.status_code == 200 and card.json()["pbx_call_id"] == "one" and card.json()["recording"] is None
    other = await live.get(f"/api/v1/calls/{call_id}", headers=bearer(people["102"]))
    assert other.status_code == 404
    assert (await live.get("/api/v1/calls/0", headers=bearer(people["200"]))).status_code == 422
    assert (await live.get("/api/v1/calls?state=ended", headers=bearer(people["200"]))).status_code == 422


async def test_monitoring_over_the_api_follows_the_rules(live: httpx.AsyncClient, store: Store, pbx: FakeSwitch,
                                                         people: dict[str, str]) -> None:
    _bridged_call(store, "101", "one")
    # An operator's token may not listen (the role's rule), nor act as someone else.
    refused = await live.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "listen"},
                              headers=bearer(people["102"]))
    assert refused.status_code == 403 and refused.json()["kind"] == "forbidden"
    posing = await live.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "listen", "by": "200"},
                             headers=bearer(people["102"]))
    assert posing.status_code == 403 and "acts as its owner" in posing.json()["detail"]
    barge = await live.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "barge"},
                            headers=bearer(people["200"]))
    assert barge.status_code == 403  # supervisors may listen and whisper, not barge (the default roles)
    assert pbx.spied == []
    started = await live.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "listen"},
                              headers=bearer(people["200"]))
    assert started.status_code == 201, started.text
    session_id = started.json()["session"]
    assert started.json() == {"session": session_id, "mode": "listen", "operator": "101", "by": "200",
                              "follow": False}
    [spy] = pbx.spied
    assert spy.target_channel == "PJSIP/101-00000001" and spy.supervisor_dial == "PJSIP/200"
    listed = (await live.get("/api/v1/monitor/sessions?active=true", headers=bearer(people["200"]))).json()
    assert [(s["id"], s["supervisor"], s["mode"]) for s in listed] == [(session_id, "200", "listen")]
    assert (await live.get("/api/v1/monitor/sessions", headers=bearer(people["101"]))).status_code == 403
    # Nobody else on the same call: who and since when.
    with store.transaction() as session:
        add_operator(session, CallSettings(), "201", "Ada", "admin", None)
        admin = create_token(session, "201", "t", None).token
    second = await live.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "listen"},
                             headers=bearer(admin))
    assert second.status_code == 409 and second.json()["kind"] == "already_monitored"
    assert "already monitored by 200" in second.json()["detail"]
    # Only the session's supervisor (or an admin) switches or stops it.
    with store.transaction() as session:
        add_operator(session, CallSettings(), "202", "Sid", "supervisor", None)
        other_supervisor = create_token(session, "202", "t", None).token
    foreign = await live.patch(f"/api/v1/monitor/sessions/{session_id}", json={"mode": "whisper"},
                               headers=bearer(other_supervisor))
    assert foreign.status_code == 403
    switched = await live.patch(f"/api/v1/monitor/sessions/{session_id}", json={"mode": "whisper"},
                                headers=bearer(people["200"]))
    assert switched.status_code == 200 and switched.json() == {"mode": "whisper"}
    assert ("set_spy_mode", (spy.spy_channel_id, MonitorMode.WHISPER)) in pbx.calls
    bad = await live.patch(f"/api/v1/monitor/sessions/{session_id}", json={"mode": "shout"},
                           headers=bearer(people["200"]))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "mode"
    stopped = await live.delete(f"/api/v1/monitor/sessions/{session_id}", headers=bearer(admin))
    assert stopped.status_code == 200 and stopped.json() == {"session": session_id, "end_reason": "stopped"}
    with store.transaction() as session:
        from ctl.store.models import MonitorSession

        row = session.get(MonitorSession, session_id)
        assert row is not None and row.ended_at is not None
        assert [change.source for change in row.mode_changes] == ["api", "api"]


async def test_a_hundred_concurrent_requests_on_one_call_make_one_session(live: httpx.AsyncClient, store: Store,
                                                                          people: dict[str, str]) -> None:
    _bridged_call(store, "101", "one")
    supervisors = []
    with store.transaction() as session:
        for n in range(100):
            extension = str(300 + n)
            add_operator(session, CallSettings(), extension, f"S{extension}", "supervisor", None)
            supervisors.append(create_token(session, extension, "t", None).token)
    replies = await asyncio.gather(*(live.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "listen"},
                                               headers=bearer(token)) for token in supervisors))
    codes = sorted(reply.status_code for reply in replies)
    assert codes == [201] + [409] * 99
    assert all(r.json()["kind"] == "already_monitored" for r in replies if r.status_code == 409)


async def test_the_local_socket_names_the_supervisor_with_by(local: httpx.AsyncClient, store: Store,
                                                             people: dict[str, str]) -> None:
    reply = await local.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "listen"})
    assert reply.status_code == 422 and "by" in reply.json()["detail"]


async def test_statuses_by_hand_follow_the_cli_rules(live: httpx.AsyncClient, people: dict[str, str],
                                                     store: Store) -> None:
    mine = await live.put("/api/v1/operators/101/status", json={"status": "break", "reason": "lunch"},
                          headers=bearer(people["101"]))
    assert mine.status_code == 200, mine.text
    assert (mine.json()["status"], mine.json()["reason"], mine.json()["changed"]) == ("break", "lunch", True)
    others = await live.put("/api/v1/operators/102/status", json={"status": "dnd"}, headers=bearer(people["101"]))
    assert others.status_code == 404  # another person does not exist for an operator
    unknown = await live.put("/api/v1/operators/999/status", json={"status": "dnd"}, headers=bearer(people["101"]))
    assert unknown.status_code == 404 and unknown.json()["detail"] == others.json()["detail"].replace("102", "999")
    by_supervisor = await live.put("/api/v1/operators/102/status", json={"status": "available"},
                                   headers=bearer(people["200"]))
    assert by_supervisor.status_code == 200 and by_supervisor.json()["status"] == "available"
    bad = await live.put("/api/v1/operators/101/status", json={"status": "break", "reason": "nap"},
                         headers=bearer(people["101"]))
    assert bad.status_code == 422 and "pause reason" in bad.json()["detail"]
    with store.transaction() as session:
        from ctl.services.operators import status_history

        assert [c.source for c in status_history(session, "102")][:1] == ["api"]


async def test_placing_a_call_and_controlling_its_recording(live: httpx.AsyncClient, people: dict[str, str],
                                                            store: Store, pbx: FakeSwitch) -> None:
    placed = await live.post("/api/v1/calls", json={"operator": "101", "to": "+7 999 123-45-67"},
                             headers=bearer(people["101"]))
    assert placed.status_code == 201, placed.text
    assert placed.json()["client"] == "+79991234567" and placed.json()["operator"] == "101"
    assert pbx.originated[-1].channel == "PJSIP/101"
    for_another = await live.post("/api/v1/calls", json={"operator": "102", "to": "79991234567"},
                                  headers=bearer(people["101"]))
    assert for_another.status_code == 403 and not [o for o in pbx.originated if o.channel == "PJSIP/102"]
    blank = await live.post("/api/v1/calls", json={"operator": "101", "to": "call me"}, headers=bearer(people["101"]))
    assert blank.status_code == 422
    call_id = _bridged_call(store, "101", "one")
    # An operator pauses their own call's recording (none here: not found), never starts or stops one.
    assert (await live.post(f"/api/v1/calls/{call_id}/recording", headers=bearer(people["101"]))).status_code == 403
    assert (await live.delete(f"/api/v1/calls/{call_id}/recording", headers=bearer(people["101"]))).status_code == 403
    paused = await live.post(f"/api/v1/calls/{call_id}/recording/pause", headers=bearer(people["101"]))
    assert paused.status_code == 404 and paused.json()["kind"] == "not_found"
    assert (await live.post(f"/api/v1/calls/{call_id}/recording/pause",
                            headers=bearer(people["102"]))).status_code == 404  # not their call
    assert (await live.post(f"/api/v1/calls/{call_id}/recording/louder",
                            headers=bearer(people["200"]))).status_code == 422


async def test_a_body_that_is_not_json_and_an_unknown_path_are_problems_too(client: httpx.AsyncClient,
                                                                            people: dict[str, str]) -> None:
    broken = await client.put("/api/v1/operators/101/status", content=b"{not json",
                              headers={**bearer(people["101"]), "Content-Type": "application/json"})
    assert broken.status_code in (400, 422) and broken.headers["content-type"] == "application/problem+json"
    unknown = await client.get("/api/v1/nothing-here", headers=bearer(people["200"]))
    assert unknown.status_code == 404 and unknown.json()["kind"] == "not_found"
    wrong = await client.delete("/api/v1/operators", headers=bearer(people["200"]))
    assert wrong.status_code == 405 and wrong.json()["kind"] == "method_not_allowed"


def _wav(path: Path, seconds: float = 1.0) -> int:
    """A closed 8 kHz mono 16-bit WAV file, as the PBX leaves one."""
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x01\x00" * int(8000 * seconds))
    return path.stat().st_size


async def test_projects_results_comments_and_the_recording_file(live: httpx.AsyncClient, store: Store,
                                                                 people: dict[str, str], tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from ctl.services.directory import ResultCodeSpec, add_project
    from ctl.store.models import Call, Project, Recording

    with store.transaction() as session:
        add_project(session, "Sales", "Hello!", [ResultCodeSpec("sale", "Sale", True)], ["101"])
        add_project(session, "Other", "", [], ["102"])
    mine = (await live.get("/api/v1/projects", headers=bearer(people["101"]))).json()
    assert [p["name"] for p in mine] == ["Sales"]
    assert len((await live.get("/api/v1/projects", headers=bearer(people["200"]))).json()) == 2
    card = (await live.get("/api/v1/projects/Sales", headers=bearer(people["101"]))).json()
    assert card["script"] == "Hello!" and card["result_codes"] == [{"code": "sale", "label": "Sale",
                                                                    "successful": True}]
    assert (await live.get("/api/v1/projects/Other", headers=bearer(people["101"]))).status_code == 404

    call_id = _bridged_call(store, "101", "one")
    with store.transaction() as session:
        found = session.get(Call, call_id)
        assert found is not None
        found.project_id = session.query(Project).filter_by(name="Sales").one().id
        found.state, found.ended_at = "ended", datetime.now(UTC)
    saved = await live.post(f"/api/v1/calls/{call_id}/result", json={"code": "sale", "comment": "happy"},
                            headers=bearer(people["101"]))
    assert saved.status_code == 200 and saved.json()["label"] == "Sale", saved.text
    bad = await live.post(f"/api/v1/calls/{call_id}/result", json={"code": "nope"}, headers=bearer(people["101"]))
    assert bad.status_code == 409 and "no result code" in bad.json()["detail"]
    assert (await live.post(f"/api/v1/calls/{call_id}/result", json={"code": "sale"},
                            headers=bearer(people["102"]))).status_code == 404
    assert (await live.put(f"/api/v1/calls/{call_id}/comment", json={"comment": "called back"},
                           headers=bearer(people["101"]))).json() == {"comment": "called back"}
    assert (await live.put(f"/api/v1/calls/{call_id}/review", json={"review": True},
                           headers=bearer(people["101"]))).status_code == 403
    assert (await live.put(f"/api/v1/calls/{call_id}/review", json={"review": True},
                           headers=bearer(people["200"]))).json() == {"review": True}
    shown = (await live.get(f"/api/v1/calls/{call_id}", headers=bearer(people["200"]))).json()
    assert (shown["result"], shown["comment"], shown["review"]) == ("sale", "called back", True)

    path = tmp_path / "2026/12/02/call-1.wav"
    size = _wav(path)
    with store.transaction() as session:
        session.add(Recording(call_id=call_id, node="asterisk", channel_id="c", channel_name="PJSIP/c-1",
                              path=str(path), pbx_path=str(path), source="policy", state="stopped", complete=True,
                              size_bytes=size, duration_ms=1000, started_at=datetime.now(UTC)))
    whole = await live.get(f"/api/v1/calls/{call_id}/recording.wav", headers=bearer(people["101"]))
    assert whole.status_code == 200 and whole.content == path.read_bytes()
    assert whole.headers["content-type"] == "audio/wav" and whole.headers["accept-ranges"] == "bytes"
    part = await live.get(f"/api/v1/calls/{call_id}/recording.wav",
                          headers={**bearer(people["200"]), "Range": "bytes=44-143"})
    assert part.status_code == 206 and part.content == path.read_bytes()[44:144]
    assert (await live.get(f"/api/v1/calls/{call_id}/recording.wav",
                           headers=bearer(people["102"]))).status_code == 404
    listed = (await live.get("/api/v1/recordings", headers=bearer(people["200"]))).json()
    assert listed[0]["call"] == call_id and listed[0]["complete"] is True
    assert (await live.get("/api/v1/recordings", headers=bearer(people["101"]))).status_code == 403
    path.write_bytes(path.read_bytes() + b"tampered")
    changed = await live.get(f"/api/v1/calls/{call_id}/recording.wav", headers=bearer(people["200"]))
    assert changed.status_code == 507 and changed.json()["kind"] == "storage"


async def test_hanging_up_and_calling_back_through_the_api(live: httpx.AsyncClient, store: Store,
                                                           people: dict[str, str], pbx: FakeSwitch) -> None:
    call_id = _bridged_call(store, "101", "one")
    assert (await live.post(f"/api/v1/calls/{call_id}/hangup", headers=bearer(people["102"]))).status_code == 404
    ended = await live.post(f"/api/v1/calls/{call_id}/hangup", headers=bearer(people["101"]))
    assert ended.status_code == 200 and ended.json() == {"id": call_id, "legs": 2}
    assert {args[0] for name, args in pbx.calls if name == "hangup"} == {"one", "c"}
    back = await live.post(f"/api/v1/calls/{call_id}/dial/client", headers=bearer(people["200"]))
    assert back.status_code == 201, back.text
    assert pbx.originated[-1].channel == "PJSIP/200" and back.json()["client"] == "79991234567"
    debrief = await live.post(f"/api/v1/calls/{call_id}/dial/operator", headers=bearer(people["200"]))
    assert debrief.status_code == 201 and debrief.json()["operator"] == "200"
    assert (await live.post(f"/api/v1/calls/{call_id}/dial/client",
                            headers=bearer(people["101"]))).status_code == 403
    with store.transaction() as session:
        from ctl.store.models import Call

        found = session.get(Call, call_id)
        assert found is not None
        found.state = "ended"
    gone = await live.post(f"/api/v1/calls/{call_id}/hangup", headers=bearer(people["200"]))
    assert gone.status_code == 409 and gone.json()["kind"] == "call_ended"


async def test_tasks_and_the_blacklist_are_read_by_whom_they_concern(live: httpx.AsyncClient, store: Store,
                                                                     people: dict[str, str]) -> None:
    from datetime import UTC, datetime

    from ctl.services.operators import blacklist_add
    from ctl.services.tasks import add_task

    with store.transaction() as session:
        add_task(session, due=datetime(2027, 1, 1, 9, tzinfo=UTC), number="79990000001", assignee="101")
        add_task(session, due=datetime(2027, 1, 1, 10, tzinfo=UTC), number="79990000002", assignee="102")
        blacklist_add(session, "79990000009", "asked not to be called")
    team = (await live.get("/api/v1/tasks?state=open", headers=bearer(people["200"]))).json()
    assert [t["assignee"] for t in team] == ["101", "102"] and team[0]["state"] == "pending"
    mine = (await live.get("/api/v1/tasks", headers=bearer(people["101"]))).json()
    assert [t["assignee"] for t in mine] == ["101"]
    assert (await live.get("/api/v1/tasks?state=later", headers=bearer(people["200"]))).status_code == 422
    listed = (await live.get("/api/v1/blacklist", headers=bearer(people["200"]))).json()
    assert listed[0]["reason"] == "asked not to be called"
    assert (await live.get("/api/v1/blacklist", headers=bearer(people["101"]))).status_code == 403


async def test_reports_for_the_team_as_json_or_csv(live: httpx.AsyncClient, store: Store,
                                                   people: dict[str, str]) -> None:
    _bridged_call(store, "101", "one")
    data = await live.get("/api/v1/reports/calls?from=today&tz=UTC", headers=bearer(people["200"]))
    assert data.status_code == 200, data.text
    body = data.json()
    assert body["report"] == "calls" and body["tz"] == "UTC" and isinstance(body["rows"], list)
    csv = await live.get("/api/v1/reports/occupancy?format=csv&tz=UTC", headers=bearer(people["200"]))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("day")
    assert (await live.get("/api/v1/reports/calls", headers=bearer(people["101"]))).status_code == 403
    bad = await live.get("/api/v1/reports/calls?from=someday", headers=bearer(people["200"]))
    assert bad.status_code == 422 and bad.json()["kind"] == "invalid"
    assert (await live.get("/api/v1/reports/salary", headers=bearer(people["200"]))).status_code == 422


async def test_the_monitoring_log_for_the_team(live: httpx.AsyncClient, store: Store,
                                               people: dict[str, str]) -> None:
    _bridged_call(store, "101", "one")
    started = await live.post("/api/v1/monitor/sessions", json={"operator": "101", "mode": "listen"},
                              headers=bearer(people["200"]))
    assert started.status_code == 201
    log = (await live.get("/api/v1/monitor/log?operator=101", headers=bearer(people["200"]))).json()
    assert [(e["event"], e["supervisor"], [m["mode"] for m in e["modes"]]) for e in log] == [
        ("session", "200", ["listen"])]
    assert (await live.get("/api/v1/monitor/log", headers=bearer(people["101"]))).status_code == 403
    assert (await live.get("/api/v1/monitor/log?since=never", headers=bearer(people["200"]))).status_code == 422
