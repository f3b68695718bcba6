"""The migrations build the models' schema, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from ctl.store.engine import alembic_config, current_revision, head_revision, make_engine, upgrade


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upgrade_then_alembic_check_finds_nothing_to_generate(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    upgrade(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    # Raises if the models and the migrations disagree in any way autogenerate sees.
    command.check(alembic_config(url))
    tables = set(inspect(engine).get_table_names())
    assert {"operators", "projects", "project_members", "project_result_codes", "calls",
            "monitor_sessions", "monitor_mode_changes"} <= tables
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_downgrade_to_base_and_up_again(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    assert current_revision(engine) is None
    assert "calls" not in inspect(engine).get_table_names()
    upgrade(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_active_monitor_session_per_call_is_enforced_by_the_database(
        backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    upgrade(url)
    engine = make_engine(url)
    now = "2026-01-01 10:00:00"
    with engine.begin() as c:
        c.execute(text("INSERT INTO operators (id, extension, name, role, dial_string, status, status_changed_at,"
                       " created_at) VALUES (1, '101', 'Op', 'operator', 'PJSIP/101', 'offline', :t, :t),"
                       " (2, '200', 'Sup', 'supervisor', 'PJSIP/200', 'offline', :t, :t),"
                       " (3, '201', 'Sup2', 'admin', 'PJSIP/201', 'offline', :t, :t)"), {"t": now})
        c.execute(text("INSERT INTO calls (id, node, pbx_call_id, direction, state, created_at, review)"
                       " VALUES (1, 'asterisk', 'x', 'outbound', 'bridged', :t, false)"), {"t": now})
        insert = text("INSERT INTO monitor_sessions (node, call_id, supervisor_id, operator_id, mode, follow,"
                      " started_at, ended_at) VALUES ('asterisk', 1, :sup, 1, 'listen', false, :t, :ended)")
        c.execute(insert, {"sup": 2, "t": now, "ended": now})  # an ended session does not count
        c.execute(insert, {"sup": 2, "t": now, "ended": None})
    with pytest.raises(Exception) as raised, engine.begin() as c:
        c.execute(insert, {"sup": 3, "t": now, "ended": None})
    assert "unique" in str(raised.value).lower()
    engine.dispose()
