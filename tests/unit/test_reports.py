"""Reports on a generated history, checked against figures computed here in plain Python.

The history spans the end of daylight saving time in Berlin (25 October 2026: a
25-hour day), has open intervals that last until "now", ties in call times, calls
without an operator or project, and sessions still in progress. The expected figures
are computed by a different method (splitting each interval at local midnights)
than the SQL (clipping intervals against a table of days).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from ctl.cli import cli
from ctl.errors import NotFound, ValidationError
from ctl.report_output import duration, render
from ctl.services.reports import Filters, build, make_period, resolve_filters
from ctl.store.engine import Store
from ctl.store.models import (
    MONITOR_MODES,
    OPERATOR_STATUSES,
    Call,
    MonitorModeChange,
    MonitorSession,
    Operator,
    OperatorStatusChange,
    Project,
    ResultCode,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 2, 14, 37, 11, tzinfo=UTC)
HISTORY_START = datetime(2026, 10, 17, 6, 0, tzinfo=UTC)
OPERATORS = [f"1{n:02d}" for n in range(1, 13)]
SUPERVISORS = ["201", "202"]
PROJECT_CODES = {"Sales": [("sale", True), ("callback", False), ("refused", False)],
                 "Support": [("solved", True), ("escalated", False)]}
MEMBERS = {"Sales": OPERATORS[:6], "Support": OPERATORS[4:]}  # 105 and 106 are in both


@dataclass
class History:
    ids: dict[str, int]  # extension -> operator id
    projects: dict[str, int]
    changes: list[tuple[str, str, datetime]]  # extension, status, at
    calls: list[dict[str, Any]]
    sessions: list[dict[str, Any]]


def _random_time(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = (end - start).total_seconds()
    return start + timedelta(seconds=round(rng.uniform(0, span), 3))


def generate(store: Store, seed: int = 7) -> History:
    rng = random.Random(seed)
    history = History({}, {}, [], [], [])
    with store.transaction() as session:
        people = {ext: Operator(extension=ext, name=f"Person {ext}", role="operator", dial_string=f"PJSIP/{ext}")
                  for ext in OPERATORS}
        people.update({ext: Operator(extension=ext, name=f"Supervisor {ext}", role="supervisor",
                                     dial_string=f"PJSIP/{ext}") for ext in SUPERVISORS})
        session.add_all(people.values())
        projects = {}
        for name, codes in PROJECT_CODES.items():
            project = Project(name=name, members=[people[e] for e in MEMBERS[name]],
                              result_codes=[ResultCode(code=c, label=c.title(), successful=s) for c, s in codes])
            projects[name] = project
            session.add(project)
        session.flush()
        history.ids = {ext: p.id for ext, p in people.items()}
        history.projects = {name: p.id for name, p in projects.items()}

        # Status changes: a random walk per operator from before the period until just before NOW.
        rows = []
        for ext in OPERATORS:
            at = HISTORY_START + timedelta(minutes=rng.randint(0, 600))
            status = "offline"
            while True:
                gaps = [rng.randint(5, 600), rng.randint(5, 900), rng.randint(600, 4 * 3600),
                        rng.randint(4 * 3600, 14 * 3600)]
                at += timedelta(seconds=rng.choice(gaps))
                if at >= NOW:
                    break
                status = rng.choice([s for s in OPERATOR_STATUSES if s != status])
                history.changes.append((ext, status, at))
                rows.append(OperatorStatusChange(operator_id=people[ext].id, from_status="x", to_status=status,
                                                 changed_at=at, source="pbx"))
            # Two changes at the same instant: the later row wins (order by time, then id).
            tie = history.changes[-1][2] + (NOW - history.changes[-1][2]) / 2
            for status in ("break", "available"):
                history.changes.append((ext, status, tie))
                rows.append(OperatorStatusChange(operator_id=people[ext].id, from_status="x", to_status=status,
                                                 changed_at=tie, source="cli"))
        session.add_all(rows)

        # Calls: answered, missed, still ringing, still talking; some without operator or project.
        clients = [f"+4930{n:07d}" for n in range(250)]
        call_rows = []
        for n in range(3000):
            created = _random_time(rng, HISTORY_START, NOW - timedelta(minutes=2))
            if n % 97 == 0 and call_rows:  # a tie with an earlier call: the id decides
                created = call_rows[-1].created_at
            project = rng.choice([None, "Sales", "Sales", "Support"])
            ext = rng.choice([None, *(MEMBERS[project] if project else OPERATORS)])
            fate = rng.random()
            answered = created + timedelta(seconds=rng.randint(1, 40)) if fate < 0.7 else None
            if answered is not None:
                ended = answered + timedelta(seconds=rng.randint(0, 900), milliseconds=rng.randint(0, 999))
            else:
                ended = created + timedelta(seconds=rng.randint(5, 60)) if fate < 0.97 else None
            if ended is not None and ended >= NOW:
                ended = None
            if answered is not None and answered >= NOW:
                answered = None
            result = None
            if project is not None and answered is not None and rng.random() < 0.8:
                result = rng.choice(PROJECT_CODES[project])[0]
            call = Call(node="n1", pbx_call_id=f"c{n}", direction=rng.choice(["outbound", "inbound", "internal"]),
                        state="ended" if ended else ("answered" if answered else "ringing"),
                        created_at=created, answered_at=answered, ended_at=ended,
                        operator_id=people[ext].id if ext else None,
                        project_id=projects[project].id if project else None,
                        client_number=rng.choice(clients) if rng.random() < 0.95 else None, result=result)
            call_rows.append(call)
        session.add_all(call_rows)
        session.flush()
        history.calls = [{"id": c.id, "created": c.created_at, "answered": c.answered_at, "ended": c.ended_at,
                          "operator": next((e for e, p in people.items() if p.id == c.operator_id), None),
                          "project": next((n for n, p in projects.items() if p.id == c.project_id), None),
                          "direction": c.direction, "client": c.client_number, "result": c.result}
                         for c in call_rows]

        # Monitor sessions with their mode changes; the newest ones still in progress.
        answered_calls = [c for c in call_rows if c.answered_at is not None and c.operator_id is not None]
        for n in range(400):
            call = rng.choice(answered_calls)
            started = call.answered_at + timedelta(seconds=rng.randint(0, 30))
            if started >= NOW:
                continue
            ended: datetime | None = started + timedelta(seconds=rng.randint(1, 1200))
            if n % 50 == 0 or ended >= NOW:
                ended = None
            supervisor = rng.choice(SUPERVISORS)
            modes = [(rng.choice(MONITOR_MODES), started)]
            at = started
            for _ in range(rng.randint(0, 3)):
                at = at + timedelta(seconds=rng.randint(0, 300))
                if at >= (ended or NOW):
                    break
                modes.append((rng.choice(MONITOR_MODES), at))
            row = MonitorSession(node="n1", call_id=call.id, supervisor_id=people[supervisor].id,
                                 operator_id=call.operator_id, mode=modes[-1][0], started_at=started,
                                 ended_at=ended, end_reason="stopped" if ended else None,
                                 mode_changes=[MonitorModeChange(mode=m, changed_at=t, source="cli")
                                               for m, t in modes])
            if ended is None:  # one active session per call: the unique index holds it
                if any(s["call"] == call.id and s["ended"] is None for s in history.sessions):
                    continue
            session.add(row)
            history.sessions.append({"call": call.id, "supervisor": supervisor,
                                     "operator": next(e for e, p in people.items() if p.id == call.operator_id),
                                     "started": started, "ended": ended, "modes": modes})
    return history


# -- the expected figures, computed the other way ------------------------------------
def split_at_midnights(start: datetime, end: datetime) -> Iterable[tuple[date, float]]:
    """(local day, seconds) pieces of [start, end) in Berlin."""
    cursor = start
    while cursor < end:
        local_day = cursor.astimezone(BERLIN).date()
        midnight = datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=BERLIN).astimezone(UTC)
        piece_end = min(end, midnight)
        yield local_day, (piece_end - cursor).total_seconds()
        cursor = piece_end


def in_period(day: date, first: date, last: date) -> bool:
    return first <= day <= last


def expected_occupancy(history: History, first: date, last: date,
                       who: set[str] | None = None) -> dict[tuple[str, str], dict[str, float]]:
    totals: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    by_operator: dict[str, list[tuple[datetime, int, str]]] = defaultdict(list)
    for order, (ext, status, at) in enumerate(history.changes):
        by_operator[ext].append((at, order, status))
    for ext, changes in by_operator.items():
        if who is not None and ext not in who:
            continue
        changes.sort()
        for index, (at, _order, status) in enumerate(changes):
            end = changes[index + 1][0] if index + 1 < len(changes) else NOW
            for day, seconds in split_at_midnights(at, end):
                if in_period(day, first, last):
                    totals[(day.isoformat(), ext)][status] += seconds
    return totals


def expected_calls(history: History, first: date, last: date) -> dict[tuple[Any, ...], dict[str, float]]:
    groups: dict[tuple[Any, ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for call in history.calls:
        day = call["created"].astimezone(BERLIN).date()
        if not in_period(day, first, last):
            continue
        group = groups[(day.isoformat(), call["operator"], call["project"], call["direction"])]
        group["calls"] += 1
        if call["answered"] is not None:
            group["answered"] += 1
            group["talk"] += ((call["ended"] or NOW) - call["answered"]).total_seconds()
        elif call["ended"] is not None:
            group["missed"] += 1
    return groups


def expected_last_results(history: History, first: date, last: date) -> dict[tuple[str, str], dict[str, Any]]:
    last_results: dict[tuple[str, str], dict[str, Any]] = {}
    for call in sorted(history.calls, key=lambda c: (c["created"], c["id"])):
        if call["result"] is None or call["project"] is None or call["client"] is None:
            continue
        if in_period(call["created"].astimezone(BERLIN).date(), first, last):
            key = (call["project"], call["client"])
            last_results[key] = {**call, "results": last_results.get(key, {}).get("results", 0) + 1}
    return last_results


def expected_monitoring(history: History, first: date, last: date) -> dict[tuple[str, str, str], dict[str, float]]:
    groups: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    for entry in history.sessions:
        day = entry["started"].astimezone(BERLIN).date()
        if not in_period(day, first, last):
            continue
        end = entry["ended"] or NOW
        group = groups[(day.isoformat(), entry["supervisor"], entry["operator"])]
        group["sessions"] += 1
        group.setdefault("call_ids", set()).add(entry["call"])
        group["total"] += (end - entry["started"]).total_seconds()
        for index, (mode, at) in enumerate(entry["modes"]):
            until = entry["modes"][index + 1][1] if index + 1 < len(entry["modes"]) else end
            group[mode] += max(0.0, (min(until, end) - at).total_seconds())
    return groups


def close(actual: Any, expected: float) -> bool:
    return abs(int(actual) - expected) <= 1


# -- the tests ---------------------------------------------------------------------
PERIODS = [(date(2026, 10, 20), date(2026, 11, 3)),  # across DST's end, up to after now
           (date(2026, 10, 25), date(2026, 10, 25)),  # the 25-hour day alone
           (date(2026, 10, 26), date(2026, 10, 29))]  # history goes on after the period's end


def test_reports_match_the_history_computed_independently(store: Store) -> None:
    history = generate(store)
    assert len(history.changes) > 1000 and len(history.calls) == 3000 and len(history.sessions) > 300
    for first, last in PERIODS:
        period = make_period(first.isoformat(), last.isoformat(), "Europe/Berlin", NOW)
        with store.transaction() as session:
            check_occupancy(session, history, period, Filters(), first, last)
            check_calls(session, history, period, Filters(), first, last)
            check_results(session, history, period, Filters(), first, last)
            check_monitoring(session, history, period, Filters(), first, last)


def check_occupancy(session: Any, history: History, period: Any, filters: Filters, first: date, last: date,
                    who: set[str] | None = None) -> None:
    report = build(session, "occupancy", period, filters, NOW)
    expected = expected_occupancy(history, first, last, who)
    got = {(row["day"], row["operator"]): row for row in report.rows}
    assert set(got) == {key for key, figures in expected.items() if sum(figures.values()) > 0}
    for key, row in got.items():
        for status in OPERATOR_STATUSES:
            assert close(row[status], expected[key][status]), (key, status, row[status], expected[key][status])
        logged_in = sum(v for s, v in expected[key].items() if s != "offline")
        assert close(row["logged_in"], logged_in)
    # A day fully covered by the history lasts 25 hours on 25 October in Berlin, 24 otherwise.
    for (day, _ext), row in got.items():
        if day in ("2026-10-25", "2026-10-26"):
            spent = sum(row[s] for s in OPERATOR_STATUSES)
            assert abs(spent - (90000 if day == "2026-10-25" else 86400)) <= len(OPERATOR_STATUSES)


def check_calls(session: Any, history: History, period: Any, filters: Filters, first: date, last: date) -> None:
    report = build(session, "calls", period, filters, NOW)
    expected = expected_calls(history, first, last)
    got = {(r["day"], r["operator"], r["project"], r["direction"]): r for r in report.rows}
    assert set(got) == set(expected)
    for key, row in got.items():
        figures = expected[key]
        assert (row["calls"], row["answered"], row["missed"]) == (
            figures["calls"], figures["answered"], figures["missed"]), key
        assert close(row["talk"], figures["talk"]), key
        average = figures["talk"] / figures["answered"] if figures["answered"] else 0
        assert close(row["average_talk"], average), key
    assert sum(r["calls"] for r in report.rows) == sum(
        1 for c in history.calls if in_period(c["created"].astimezone(BERLIN).date(), first, last))


def check_results(session: Any, history: History, period: Any, filters: Filters, first: date, last: date) -> None:
    last_results = expected_last_results(history, first, last)
    clients = build(session, "results", period, filters, NOW, clients=True)
    got = {(r["project"], r["client"]): r for r in clients.rows}
    assert set(got) == set(last_results)
    for key, row in got.items():
        assert (row["result"], row["call"], row["results"]) == (
            last_results[key]["result"], last_results[key]["id"], last_results[key]["results"]), key
        assert row["operator"] == last_results[key]["operator"]

    successful = {code for codes in PROJECT_CODES.values() for code, ok in codes if ok}
    summary = build(session, "results", period, filters, NOW)
    for project in PROJECT_CODES:
        mine = [v for (p, _c), v in last_results.items() if p == project]
        rows = [r for r in summary.rows if r["project"] == project]
        counts: dict[str, int] = defaultdict(int)
        for entry in mine:
            counts[entry["result"]] += 1
        assert {r["result"]: r["clients"] for r in rows} == counts
        for row in rows:
            assert row["share"] == pytest.approx(100.0 * counts[row["result"]] / len(mine))
            assert row["successful"] == (row["result"] in successful)
            assert row["project_successful_share"] == pytest.approx(
                100.0 * sum(1 for e in mine if e["result"] in successful) / len(mine))


def check_monitoring(session: Any, history: History, period: Any, filters: Filters, first: date,
                     last: date) -> None:
    report = build(session, "monitoring", period, filters, NOW)
    expected = expected_monitoring(history, first, last)
    got = {(r["day"], r["supervisor"], r["operator"]): r for r in report.rows}
    assert set(got) == set(expected)
    for key, row in got.items():
        figures = expected[key]
        assert (row["sessions"], row["calls"]) == (figures["sessions"], len(figures["call_ids"])), key
        assert close(row["total"], figures["total"]), key
        for mode in MONITOR_MODES:
            assert close(row[mode], figures[mode]), (key, mode)


def test_reports_filter_by_project_and_operator(store: Store) -> None:
    history = generate(store, seed=11)
    first, last = date(2026, 10, 22), date(2026, 10, 27)
    period = make_period(first.isoformat(), last.isoformat(), "Europe/Berlin", NOW)
    with store.transaction() as session:
        sales = resolve_filters(session, "Sales", None)
        check_occupancy(session, history, period, sales, first, last, who=set(MEMBERS["Sales"]))
        calls = build(session, "calls", period, sales, NOW)
        assert {r["project"] for r in calls.rows} == {"Sales"}
        assert sum(r["calls"] for r in calls.rows) == sum(
            1 for c in history.calls
            if c["project"] == "Sales" and in_period(c["created"].astimezone(BERLIN).date(), first, last))
        results = build(session, "results", period, sales, NOW)
        assert {r["project"] for r in results.rows} == {"Sales"}

        one = resolve_filters(session, None, "105")
        check_occupancy(session, history, period, one, first, last, who={"105"})
        calls = build(session, "calls", period, one, NOW)
        assert {r["operator"] for r in calls.rows} == {"105"}
        assert sum(r["calls"] for r in calls.rows) == sum(
            1 for c in history.calls
            if c["operator"] == "105" and in_period(c["created"].astimezone(BERLIN).date(), first, last))
        monitoring = build(session, "monitoring", period, one, NOW)
        assert monitoring.rows and {r["operator"] for r in monitoring.rows} == {"105"}
        clients = build(session, "results", period, one, NOW, clients=True)
        expected = {k for k, v in expected_last_results(history, first, last).items() if v["operator"] == "105"}
        assert {(r["project"], r["client"]) for r in clients.rows} == expected

        supervisor = resolve_filters(session, None, "201")
        monitoring = build(session, "monitoring", period, supervisor, NOW)
        assert monitoring.rows and {r["supervisor"] for r in monitoring.rows} == {"201"}


def test_period_bounds_and_refusals() -> None:
    period = make_period("2026-10-25", None, "Europe/Berlin", NOW)
    assert [d.label for d in period.days] == ["2026-10-25"]
    assert period.days[0].end - period.days[0].start == 25 * 3600
    spring = make_period("2026-03-29", "2026-03-30", "Europe/Berlin", NOW)
    assert [d.end - d.start for d in spring.days] == [23 * 3600, 24 * 3600]
    assert make_period("today", None, "UTC", NOW).first == date(2026, 11, 2)
    assert make_period("yesterday", "today", "Asia/Tokyo", NOW).first == date(2026, 11, 1)
    for args, message in [(("2026-11-05", "2026-11-01", "UTC"), "before --from"),
                          (("2025-01-01", "2026-11-01", "UTC"), "at most 366 days"),
                          (("2026-13-01", None, "UTC"), "--from"),
                          (("2026-11-01", "soon", "UTC"), "--to"),
                          (("2026-11-01", None, "Mars/Olympus"), "--tz")]:
        with pytest.raises(ValidationError, match=message):
            make_period(*args, now=NOW)


def test_unknown_filters_are_refused(store: Store) -> None:
    with store.transaction() as session, pytest.raises(NotFound):
        resolve_filters(session, "Nope", None)
    with store.transaction() as session, pytest.raises(NotFound):
        resolve_filters(session, None, "999")


def test_formats() -> None:
    assert duration(0) == "0:00:00" and duration(90061) == "25:01:01"


def test_cli_report_formats_and_errors(sqlite_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import io
    import json

    from ctl.store.engine import upgrade

    upgrade(sqlite_url)
    store = Store(sqlite_url)
    history = generate(store, seed=3)
    store.dispose()
    monkeypatch.setenv("CTL_DATABASE_URL", sqlite_url)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    common = ["--from", "2026-10-24", "--to", "2026-10-26", "--tz", "Europe/Berlin"]
    shown = run("report", "occupancy", *common, "--format", "json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    assert (document["report"], document["from"], document["to"], document["tz"]) == (
        "occupancy", "2026-10-24", "2026-10-26", "Europe/Berlin")
    assert document["rows"] and all(isinstance(r["available"], int) for r in document["rows"])

    as_csv = run("report", "calls", *common, "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert as_csv.exit_code == 0 and parsed
    assert sum(int(r["calls"]) for r in parsed) == sum(
        1 for c in history.calls
        if in_period(c["created"].astimezone(BERLIN).date(), date(2026, 10, 24), date(2026, 10, 26)))

    table = run("report", "monitoring", *common)
    assert table.exit_code == 0 and table.output.startswith("monitoring report, 2026-10-24 to 2026-10-26")
    assert "SUPERVISOR" in table.output and ":" in table.output.splitlines()[2]
    clients = run("report", "results", *common, "--clients", "--project", "Support", "--format", "json")
    assert {r["project"] for r in json.loads(clients.output)["rows"]} == {"Support"}
    empty = run("report", "calls", "--from", "2020-01-01", "--tz", "UTC")
    assert empty.exit_code == 0 and "(none)" in empty.output
    expected_figures = render(build_for_cli(sqlite_url, common), "table")
    assert run("report", "occupancy", *common).output.rstrip("\n") == expected_figures

    for args, code, message in [
        (["report", "calls", "--from", "2026-11-05", "--to", "2026-11-01"], 2, "before --from"),
        (["report", "calls", "--tz", "Nowhere/Else"], 2, "--tz"),
        (["report", "calls", "--project", "Nope"], 4, "no project named"),
        (["report", "occupancy", "--operator", "999"], 4, "no operator"),
        (["report", "occupancy", "--operator", "1x"], 2, "extension"),
        (["report", "occupancy", "--clients"], 2, "results report only"),
        (["report", "calls", "--format", "xml"], 2, "xml"),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code == code, (args, result.output)
        assert message in (result.output + (result.stderr if result.stderr_bytes is not None else "")), args
    errored = runner.invoke(cli, ["report", "calls", "--project", "Nope", "--format", "json"])
    assert json.loads(errored.stdout.splitlines()[0])["error"] == "not_found"


def build_for_cli(url: str, common: list[str]) -> Any:
    store = Store(url)
    try:
        period = make_period(common[1], common[3], common[5], datetime.now(UTC))
        with store.transaction() as session:
            return build(session, "occupancy", period, Filters(), datetime.now(UTC))
    finally:
        store.dispose()
