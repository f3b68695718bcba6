"""Who sees whom: operators see only themselves; supervisors, admins and owners the team.

The same rule for every door that shows people or calls (the API, the event stream, the
board); the local admin (the CLI, the API's Unix socket) sees everything.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ctl.errors import Forbidden, NotFound
from ctl.services.calls import call_card
from ctl.services.directory import get_operator, get_project, list_operators, list_projects
from ctl.store import queries
from ctl.store.models import Call, MonitorSession, Operator, Project, Recording, Task

TEAM_ROLES = ("owner", "admin", "supervisor")


def sees_team(role: str | None) -> bool:
    """None: the local admin."""
    return role is None or role in TEAM_ROLES


def check_sees(viewer_role: str | None, viewer_extension: str | None, extension: str) -> None:
    """An operator asking about someone else is told that person does not exist for them."""
    if not sees_team(viewer_role) and viewer_extension != extension:
        raise NotFound(f"no operator with extension {extension}")


def operators_visible(session: Session, viewer_role: str | None, viewer_extension: str | None) -> list[Operator]:
    if sees_team(viewer_role):
        return list_operators(session)
    return [get_operator(session, viewer_extension or "")]


def operator_visible(session: Session, viewer_role: str | None, viewer_extension: str | None,
                     extension: str) -> Operator:
    check_sees(viewer_role, viewer_extension, extension)
    return get_operator(session, extension)


def calls_visible(session: Session, viewer_role: str | None, viewer_extension: str | None, active: bool,
                  limit: int) -> list[Call]:
    """Newest first: every call for the team, an operator's own for an operator."""
    if sees_team(viewer_role):
        return queries.calls(session, active, limit)
    return queries.calls(session, active, limit, get_operator(session, viewer_extension or "").id)


def call_visible(session: Session, viewer_role: str | None, viewer_extension: str | None,
                 call_id: int) -> tuple[Call, Recording | None]:
    """A call and its recording; another operator's call does not exist for an operator."""
    call, recording = call_card(session, call_id)
    if not sees_team(viewer_role) and (call.operator is None or call.operator.extension != viewer_extension):
        raise NotFound(f"no call with id {call_id}")
    return call, recording


def monitor_sessions_visible(session: Session, viewer_role: str | None, active: bool,
                             limit: int) -> list[MonitorSession]:
    """Who monitors whom is the team's business: operators are not shown it."""
    if not sees_team(viewer_role):
        raise Forbidden("operators do not see monitor sessions")
    return queries.monitor_sessions(session, active, limit)


def check_controls_session(session: Session, actor_role: str | None, actor_extension: str | None,
                           session_id: int) -> None:
    """A session is switched or stopped by its own supervisor, an admin or an owner (or the local admin)."""
    if actor_role is None or actor_role in ("owner", "admin"):
        return
    row = session.get(MonitorSession, session_id)
    if row is None:
        raise NotFound(f"no monitor session with id {session_id}")
    if row.supervisor is None or row.supervisor.extension != actor_extension:
        raise Forbidden(f"monitor session {session_id} is another supervisor's")


def check_places_call(viewer_role: str | None, viewer_extension: str | None, operator_extension: str) -> None:
    """An operator places calls from their own phone; the team for anyone."""
    if not sees_team(viewer_role) and viewer_extension != operator_extension:
        raise Forbidden(f"{viewer_extension} may place calls only from their own phone, not {operator_extension}'s")


def check_controls_recording(session: Session, viewer_role: str | None, viewer_extension: str | None,
                             call_id: int, pause_only: bool) -> None:
    """The team starts, stops, pauses and resumes any call's recording; an operator only
    pauses and resumes their own call's (as with the in-call code)."""
    if sees_team(viewer_role):
        return
    call_visible(session, viewer_role, viewer_extension, call_id)  # another operator's call: not found
    if not pause_only:
        raise Forbidden(f"{viewer_extension} may pause and resume their call's recording, not start or stop it")


def projects_visible(session: Session, viewer_role: str | None, viewer_extension: str | None) -> list[Project]:
    """The team sees every project; an operator the projects they are a member of."""
    projects = list_projects(session)
    if sees_team(viewer_role):
        return projects
    return [p for p in projects if any(m.extension == viewer_extension for m in p.members)]


def project_visible(session: Session, viewer_role: str | None, viewer_extension: str | None, name: str) -> Project:
    project = get_project(session, name)
    if not sees_team(viewer_role) and not any(m.extension == viewer_extension for m in project.members):
        raise NotFound(f"no project named {name!r}")
    return project


def check_works_on_call(session: Session, viewer_role: str | None, viewer_extension: str | None,
                        call_id: int) -> None:
    """Results and comments: the call's own operator, or the team."""
    call_visible(session, viewer_role, viewer_extension, call_id)


def check_team(viewer_role: str | None, what: str) -> None:
    if not sees_team(viewer_role):
        raise Forbidden(f"operators do not {what}")


def tasks_visible(session: Session, viewer_role: str | None, viewer_extension: str | None, state: str | None,
                  limit: int) -> list[Task]:
    """Callbacks: the team sees all; an operator those assigned to them."""
    from ctl.services.tasks import list_tasks

    assignee = None if sees_team(viewer_role) else viewer_extension
    return list_tasks(session, state, assignee, limit)
