"""Operators and projects: who may be rung, and what they work on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ctl.config import CallSettings
from ctl.errors import Conflict, NotFound, ValidationError
from ctl.store.models import RECORDING_POLICIES, Operator, Project, ResultCode
from ctl.validation import check_extension, check_person_dial_string, check_result_code, check_role, check_text


@dataclass(frozen=True)
class ResultCodeSpec:
    code: str
    label: str
    successful: bool

    @classmethod
    def parse(cls, text: str) -> ResultCodeSpec:
        """CODE[:LABEL][:success] — e.g. `sale:Sale made:success`, `callback:Call back later`."""
        parts = text.split(":")
        successful = len(parts) > 1 and parts[-1].strip().lower() in ("success", "successful", "yes")
        if successful:
            parts = parts[:-1]
        if len(parts) > 2:
            raise ValidationError(f"result code {text!r}: expected CODE[:LABEL][:success]")
        code = check_result_code(parts[0])
        label = check_text(parts[1] if len(parts) > 1 else code, f"result code {code} label", 200)
        return cls(code, label, successful)


def get_operator(session: Session, extension: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.extension == check_extension(extension)))
    if operator is None:
        raise NotFound(f"no operator with extension {extension}")
    return operator


def add_operator(session: Session, calls: CallSettings, extension: str, name: str, role: str,
                 dial_string: str | None) -> Operator:
    extension = check_extension(extension)
    operator = Operator(
        extension=extension,
        name=check_text(name, "name", 200),
        role=check_role(role),
        dial_string=check_person_dial_string(dial_string or calls.operator_dial.replace("{extension}", extension),
                                             extension),
    )
    if session.scalar(select(Operator.id).where(Operator.extension == extension)) is not None:
        raise Conflict(f"operator {extension} already exists")
    session.add(operator)
    session.flush()
    return operator


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.extension)))


def remove_operator(session: Session, extension: str) -> Operator:
    operator = get_operator(session, extension)
    session.delete(operator)
    return operator


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name.strip())
                             .options(selectinload(Project.result_codes), selectinload(Project.members)))
    if project is None:
        raise NotFound(f"no project named {name!r}")
    return project


def check_recording_policy(value: str, field: str = "--recording") -> str:
    if value not in RECORDING_POLICIES:
        raise ValidationError(f"{field}: expected always, on-demand or never, got {value!r}")
    return value


_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_WRAPUP_SECONDS = 86_400


def check_queue_name(value: str, field: str = "--queue") -> str:
    if not _QUEUE_NAME.fullmatch(value):
        raise ValidationError(f"{field}: {value!r} is not a queue name (letters, digits, _ . -; up to 64)")
    return value


def check_wrapup_seconds(value: int, field: str = "--wrapup-seconds") -> int:
    if not 0 <= value <= MAX_WRAPUP_SECONDS:
        raise ValidationError(f"{field}: expected 0 to {MAX_WRAPUP_SECONDS} seconds, got {value}")
    return value


def _check_queue_free(session: Session, queue: str, project_id: int | None) -> None:
    owner = session.scalar(select(Project).where(Project.queue == queue))
    if owner is not None and owner.id != project_id:
        raise Conflict(f"queue {queue!r} already belongs to project {owner.name!r}")


def add_project(session: Session, name: str, script: str, result_codes: list[ResultCodeSpec],
                member_extensions: list[str], recording_policy: str = "always",
                recording_stereo: bool | None = None, recording_supervisor: bool = False,
                queue: str | None = None, wrapup_seconds: int | None = None) -> Project:
    name = check_text(name, "project name", 100)
    check_recording_policy(recording_policy)
    if queue is not None:
        _check_queue_free(session, check_queue_name(queue), None)
    if wrapup_seconds is not None:
        check_wrapup_seconds(wrapup_seconds)
    codes = [spec.code for spec in result_codes]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    if duplicates:
        raise ValidationError(f"result code {duplicates[0]!r} given twice")
    members = [get_operator(session, extension) for extension in dict.fromkeys(member_extensions)]
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise Conflict(f"project {name!r} already exists")
    project = Project(
        name=name,
        script=check_text(script, "script", 100_000, allow_newlines=True, required=False),
        result_codes=[ResultCode(code=s.code, label=s.label, successful=s.successful) for s in result_codes],
        members=members,
        recording_policy=recording_policy,
        recording_stereo=recording_stereo,
        recording_supervisor=recording_supervisor,
        queue=queue,
        wrapup_seconds=wrapup_seconds,
    )
    session.add(project)
    session.flush()
    return project


def set_project_recording(session: Session, name: str, policy: str | None, stereo: bool | None,
                          clear_stereo: bool = False, supervisor: bool | None = None) -> Project:
    """Change a project's recording policy, stereo choice or supervisor mixing (None: leave as is)."""
    project = get_project(session, name)
    if supervisor is not None:
        project.recording_supervisor = supervisor
    if policy is not None:
        project.recording_policy = check_recording_policy(policy)
    if stereo is not None or clear_stereo:
        project.recording_stereo = stereo
    return project


def set_project_distribution(session: Session, name: str, queue: str | None = None, clear_queue: bool = False,
                             wrapup_seconds: int | None = None, clear_wrapup: bool = False) -> Project:
    """Change a project's queue or its wrap-up maximum (None and no clear: leave as is)."""
    project = get_project(session, name)
    if queue is not None:
        _check_queue_free(session, check_queue_name(queue), project.id)
        project.queue = queue
    elif clear_queue:
        project.queue = None
    if wrapup_seconds is not None:
        project.wrapup_seconds = check_wrapup_seconds(wrapup_seconds)
    elif clear_wrapup:
        project.wrapup_seconds = None
    return project


def set_project_members(session: Session, name: str, add: list[str], remove: list[str]) -> Project:
    """Add and remove members (a person may belong to several projects)."""
    project = get_project(session, name)
    both = set(add) & set(remove)
    if both:
        raise ValidationError(f"{sorted(both)[0]} is both added and removed")
    for extension in dict.fromkeys(add):
        person = get_operator(session, extension)
        if person not in project.members:
            project.members.append(person)
    for extension in dict.fromkeys(remove):
        person = get_operator(session, extension)
        if person not in project.members:
            raise NotFound(f"{extension} is not a member of project {project.name!r}")
        project.members.remove(person)
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name)
                                .options(selectinload(Project.result_codes), selectinload(Project.members))))
