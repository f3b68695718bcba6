"""Who sees whom: operators see only themselves; supervisors, admins and owners the team.

The same rule for every door that shows people or calls (the API, the event stream, the
board); the local admin (the CLI, the API's Unix socket) sees everything.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ctl.errors import NotFound
from ctl.services.directory import get_operator, list_operators
from ctl.store.models import Operator

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
