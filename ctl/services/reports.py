"""Reports: occupancy, calls, results and monitoring, computed by the database.

Every figure is an SQL aggregate (window functions for the intervals between two
status or mode changes), so a report reads a few hundred summary rows, never the
history itself; the same statements run on SQLite and PostgreSQL. Days are local
days of a time zone: their boundaries are computed here (a day across a DST change
lasts 23 or 25 hours) and handed to the query as a small table of epoch seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CTE,
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ctl.errors import ValidationError
from ctl.services.directory import get_operator, get_project
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
    project_members,
)

REPORTS = ("occupancy", "calls", "results", "monitoring")
MAX_DAYS = 366  # also keeps the days table under SQLite's 500-term compound SELECT limit

Kind = Literal["text", "int", "seconds", "percent", "bool", "time"]


# -- portable SQL pieces ---------------------------------------------------------
class epoch_seconds(FunctionElement[float]):  # noqa: N801 - reads like the SQL function it is
    """Seconds since 1970 of a stored time, as a float, on every backend."""

    type = Float()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UTC times as text; julianday() reads them to the millisecond.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch_seconds)
def _epoch_postgresql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"


class least(FunctionElement[float]):  # noqa: N801
    type = Float()
    inherit_cache = True
    name = "least"


class greatest(FunctionElement[float]):  # noqa: N801
    type = Float()
    inherit_cache = True
    name = "greatest"


@compiles(least)
def _least(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"LEAST({compiler.process(element.clauses, **kw)})"


@compiles(greatest)
def _greatest(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"


@compiles(least, "sqlite")
def _least_sqlite(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"  # the scalar, two-argument min()


@compiles(greatest, "sqlite")
def _greatest_sqlite(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


def _float(value: float) -> ColumnElement[float]:
    return cast(literal(value, Float), Float)


def _whole(expression: ColumnElement[Any]) -> ColumnElement[int]:
    """Seconds rounded to whole seconds, as an integer (0 when nothing was summed)."""
    return cast(func.round(func.coalesce(expression, 0.0)), Integer)


def _zero_or_more(expression: ColumnElement[float]) -> ColumnElement[float]:
    return greatest(expression, _float(0.0))


# -- the period ------------------------------------------------------------------
@dataclass(frozen=True)
class Day:
    label: str  # YYYY-MM-DD in the report's zone
    start: float  # epoch seconds
    end: float


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive
    zone_name: str
    zone: tzinfo
    days: tuple[Day, ...]

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.days[0].start, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.days[-1].end, UTC)


def _local_zone() -> tuple[str, tzinfo]:
    """The machine's zone, with its DST rules: $TZ, else /etc/localtime, else UTC."""
    named = os.environ.get("TZ", "").lstrip(":")
    if named:
        try:
            return named, ZoneInfo(named)
        except (ValueError, OSError, KeyError):
            pass
    localtime = Path("/etc/localtime")
    target = str(localtime.resolve()) if localtime.is_symlink() else ""
    if "/zoneinfo/" in target:
        name = target.split("/zoneinfo/", 1)[1]
        try:
            return name, ZoneInfo(name)
        except (ValueError, OSError, KeyError):
            pass
    try:
        with localtime.open("rb") as handle:
            return "localtime", ZoneInfo.from_file(handle)
    except (OSError, ValueError):
        return "UTC", UTC


def resolve_zone(name: str | None) -> tuple[str, tzinfo]:
    if name is None:
        return _local_zone()
    try:
        return name, ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        raise ValidationError(f"--tz: {name!r} is not a time zone name (e.g. Europe/Moscow, UTC)") from None


def parse_day(text: str, field: str, today: date) -> date:
    """YYYY-MM-DD, today or yesterday."""
    cleaned = text.strip().lower()
    if cleaned == "today":
        return today
    if cleaned == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(cleaned)
    except ValueError:
        raise ValidationError(f"{field}: {text!r} is not a date (YYYY-MM-DD, today or yesterday)") from None


def make_period(first: str | None, last: str | None, zone_name: str | None,
                now: datetime | None = None) -> Period:
    """The days from --from to --to (inclusive) in --tz; each day's bounds in epoch seconds."""
    name, zone = resolve_zone(zone_name)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    first_day = parse_day(first, "--from", today) if first is not None else today
    last_day = parse_day(last, "--to", today) if last is not None else first_day
    if last_day < first_day:
        raise ValidationError(f"--to {last_day} is before --from {first_day}")
    count = (last_day - first_day).days + 1
    if count > MAX_DAYS:
        raise ValidationError(f"the period is {count} days long; a report covers at most {MAX_DAYS} days")
    days = []
    try:
        for offset in range(count):
            day = first_day + timedelta(days=offset)
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            following = day + timedelta(days=1)
            end = datetime(following.year, following.month, following.day, tzinfo=zone)
            days.append(Day(day.isoformat(), start.timestamp(), end.timestamp()))
    except (OverflowError, ValueError):
        raise ValidationError(f"the period {first_day} to {last_day} runs past the last day a date can hold") from None
    return Period(first_day, last_day, name, zone, tuple(days))


def _days_table(period: Period) -> CTE:
    rows = [select(cast(literal(d.label), String(10)).label("day"), _float(d.start).label("ds"),
                   _float(d.end).label("de")) for d in period.days]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).cte("days")


# -- the result --------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    kind: Kind = "text"


@dataclass
class Report:
    name: str
    period: Period
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    project_id: int | None = None
    operator_id: int | None = None


def resolve_filters(session: Session, project: str | None, operator: str | None) -> Filters:
    return Filters(get_project(session, project).id if project is not None else None,
                   get_operator(session, operator).id if operator is not None else None)


def _rows(session: Session, query: Select[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in session.execute(query)]


# -- occupancy -----------------------------------------------------------------------
def occupancy(session: Session, period: Period, filters: Filters, now: datetime) -> Report:
    """Seconds per status per operator per day: each status lasts until the next change
    (the last one until now), clipped to the day."""
    days = _days_table(period)
    change = OperatorStatusChange
    at = epoch_seconds(change.changed_at)
    changes_query = (
        select(change.operator_id, change.to_status.label("status"), at.label("t0"),
               func.lead(at).over(partition_by=change.operator_id,
                                  order_by=(change.changed_at, change.id)).label("t1"))
        .where(change.changed_at < period.end))
    if filters.operator_id is not None:
        changes_query = changes_query.where(change.operator_id == filters.operator_id)
    if filters.project_id is not None:
        changes_query = changes_query.where(change.operator_id.in_(
            select(project_members.c.operator_id).where(project_members.c.project_id == filters.project_id)))
    changes = changes_query.cte("changes")
    until = func.coalesce(changes.c.t1, _float(now.timestamp()))
    pieces = (
        select(days.c.day, changes.c.operator_id, changes.c.status,
               _zero_or_more(least(until, days.c.de) - greatest(changes.c.t0, days.c.ds)).label("seconds"))
        .select_from(changes)
        .join(days, and_(changes.c.t0 < days.c.de, until > days.c.ds))
        .cte("pieces"))
    per_status = [
        _whole(func.sum(case((pieces.c.status == status, pieces.c.seconds), else_=0.0))).label(status)
        for status in OPERATOR_STATUSES]
    logged_in = func.sum(case((pieces.c.status != "offline", pieces.c.seconds), else_=0.0))
    query = (
        select(pieces.c.day, Operator.extension.label("operator"), Operator.name, *per_status,
               _whole(logged_in).label("logged_in"))
        .select_from(pieces).join(Operator, Operator.id == pieces.c.operator_id)
        .group_by(pieces.c.day, Operator.id, Operator.extension, Operator.name)
        .order_by(pieces.c.day, Operator.extension))
    columns = [Column("day"), Column("operator"), Column("name"),
               *(Column(status, "seconds") for status in OPERATOR_STATUSES), Column("logged_in", "seconds")]
    return Report("occupancy", period, columns, _rows(session, query))


# -- calls ---------------------------------------------------------------------------
def calls(session: Session, period: Period, filters: Filters, now: datetime) -> Report:
    """Per day, operator, project and direction: calls, answered, missed, talk time.

    Answered: someone picked up (the client on an outbound call, the operator on an
    inbound one); missed: ended without that. Talk runs from the answer to the hangup."""
    days = _days_table(period)
    created = epoch_seconds(Call.created_at)
    answered = Call.answered_at.is_not(None)
    talk = case((answered, _zero_or_more(func.coalesce(epoch_seconds(Call.ended_at), _float(now.timestamp()))
                                         - epoch_seconds(Call.answered_at))), else_=0.0)
    answered_count = func.sum(case((answered, 1), else_=0))
    query = (
        select(days.c.day, Operator.extension.label("operator"), Project.name.label("project"), Call.direction,
               func.count(Call.id).label("calls"), answered_count.label("answered"),
               func.sum(case((and_(Call.answered_at.is_(None), Call.ended_at.is_not(None)), 1), else_=0))
               .label("missed"),
               _whole(func.sum(talk)).label("talk"),
               _whole(func.sum(talk) / func.nullif(answered_count, 0)).label("average_talk"))
        .select_from(Call)
        .join(days, and_(created >= days.c.ds, created < days.c.de))
        .outerjoin(Operator, Operator.id == Call.operator_id)
        .outerjoin(Project, Project.id == Call.project_id)
        .where(Call.created_at >= period.start, Call.created_at < period.end)
        .group_by(days.c.day, Operator.extension, Project.name, Call.direction)
        .order_by(days.c.day, Operator.extension.nulls_last(), Project.name.nulls_last(), Call.direction))
    if filters.operator_id is not None:
        query = query.where(Call.operator_id == filters.operator_id)
    if filters.project_id is not None:
        query = query.where(Call.project_id == filters.project_id)
    columns = [Column("day"), Column("operator"), Column("project"), Column("direction"), Column("calls", "int"),
               Column("answered", "int"), Column("missed", "int"), Column("talk", "seconds"),
               Column("average_talk", "seconds")]
    return Report("calls", period, columns, _rows(session, query))


# -- results -------------------------------------------------------------------------
def _last_results(period: Period, filters: Filters) -> CTE:
    """Each client's last result in the period, per project (ties: the later call)."""
    ranked_query = (
        select(Call.id, Call.project_id, Call.client_number, Call.result, Call.operator_id, Call.created_at,
               func.row_number().over(partition_by=(Call.project_id, Call.client_number),
                                      order_by=(Call.created_at.desc(), Call.id.desc())).label("rank"),
               func.count(Call.id).over(partition_by=(Call.project_id, Call.client_number)).label("results"))
        .where(Call.result.is_not(None), Call.project_id.is_not(None), Call.client_number.is_not(None),
               Call.created_at >= period.start, Call.created_at < period.end))
    if filters.project_id is not None:
        ranked_query = ranked_query.where(Call.project_id == filters.project_id)
    ranked = ranked_query.cte("ranked")
    last = select(ranked).where(ranked.c.rank == 1)
    if filters.operator_id is not None:  # the clients this operator spoke to last
        last = last.where(ranked.c.operator_id == filters.operator_id)
    return last.cte("last_results")


def results(session: Session, period: Period, filters: Filters) -> Report:
    """Per project and result code: how many clients' last result it is, its share of the
    project's clients, and the project's share of clients whose last result is successful."""
    last = _last_results(period, filters)
    successful = ResultCode.successful.is_(True)
    clients = func.count(last.c.id)
    per_project = func.sum(clients).over(partition_by=Project.name)
    query = (
        select(Project.name.label("project"), last.c.result, ResultCode.label, ResultCode.successful,
               clients.label("clients"),
               (cast(clients, Float) * 100.0 / per_project).label("share"),
               (cast(func.sum(case((successful, clients), else_=0)).over(partition_by=Project.name), Float)
                * 100.0 / per_project).label("project_successful_share"))
        .select_from(last)
        .join(Project, Project.id == last.c.project_id)
        .outerjoin(ResultCode, and_(ResultCode.project_id == last.c.project_id, ResultCode.code == last.c.result))
        .group_by(Project.name, last.c.result, ResultCode.label, ResultCode.successful)
        .order_by(Project.name, clients.desc(), last.c.result))
    columns = [Column("project"), Column("result"), Column("label"), Column("successful", "bool"),
               Column("clients", "int"), Column("share", "percent"), Column("project_successful_share", "percent")]
    return Report("results", period, columns, _rows(session, query))


def client_results(session: Session, period: Period, filters: Filters) -> Report:
    """Every client's last result (per project), newest first."""
    last = _last_results(period, filters)
    query = (
        select(Project.name.label("project"), last.c.client_number.label("client"), last.c.result,
               ResultCode.successful, last.c.created_at.label("at"), Operator.extension.label("operator"),
               last.c.id.label("call"), last.c.results)
        .select_from(last)
        .join(Project, Project.id == last.c.project_id)
        .outerjoin(ResultCode, and_(ResultCode.project_id == last.c.project_id, ResultCode.code == last.c.result))
        .outerjoin(Operator, Operator.id == last.c.operator_id)
        .order_by(Project.name, last.c.created_at.desc(), last.c.id.desc()))
    columns = [Column("project"), Column("client"), Column("result"), Column("successful", "bool"),
               Column("at", "time"), Column("operator"), Column("call", "int"), Column("results", "int")]
    return Report("results", period, columns, _rows(session, query))


# -- monitoring ----------------------------------------------------------------------
def monitoring(session: Session, period: Period, filters: Filters, now: datetime) -> Report:
    """Per day (of the start), supervisor and operator: sessions, calls, time in each mode."""
    days = _days_table(period)
    monitor, change = MonitorSession, MonitorModeChange
    at = epoch_seconds(change.changed_at)
    sessions_query = (
        select(monitor.id, monitor.supervisor_id, monitor.operator_id, monitor.call_id,
               epoch_seconds(monitor.started_at).label("started"),
               func.coalesce(epoch_seconds(monitor.ended_at), _float(now.timestamp())).label("ended"))
        .where(monitor.started_at >= period.start, monitor.started_at < period.end))
    if filters.operator_id is not None:
        sessions_query = sessions_query.where(or_(monitor.operator_id == filters.operator_id,
                                                  monitor.supervisor_id == filters.operator_id))
    if filters.project_id is not None:
        sessions_query = sessions_query.where(monitor.call_id.in_(
            select(Call.id).where(Call.project_id == filters.project_id)))
    sessions = sessions_query.cte("sessions")
    modes = (
        select(change.session_id, change.mode, at.label("t0"),
               func.lead(at).over(partition_by=change.session_id, order_by=(change.changed_at, change.id)).label("t1"))
        .where(change.session_id.in_(select(sessions.c.id)))
        .cte("modes"))
    mode_seconds = _zero_or_more(least(func.coalesce(modes.c.t1, sessions.c.ended), sessions.c.ended)
                                 - greatest(modes.c.t0, sessions.c.started))
    per_session = (
        select(sessions.c.id, sessions.c.supervisor_id, sessions.c.operator_id, sessions.c.call_id,
               sessions.c.started, _zero_or_more(sessions.c.ended - sessions.c.started).label("seconds"),
               *(func.sum(case((modes.c.mode == mode, mode_seconds), else_=0.0)).label(mode)
                 for mode in MONITOR_MODES))
        .select_from(sessions)
        .outerjoin(modes, modes.c.session_id == sessions.c.id)
        .group_by(sessions.c.id, sessions.c.supervisor_id, sessions.c.operator_id, sessions.c.call_id,
                  sessions.c.started, sessions.c.ended)
        .cte("per_session"))
    supervisor = Operator.__table__.alias("supervisor")
    operator = Operator.__table__.alias("operator")
    query = (
        select(days.c.day, supervisor.c.extension.label("supervisor"), operator.c.extension.label("operator"),
               func.count(per_session.c.id).label("sessions"),
               func.count(func.distinct(per_session.c.call_id)).label("calls"),
               _whole(func.sum(per_session.c.seconds)).label("total"),
               *(_whole(func.sum(per_session.c[mode])).label(mode) for mode in MONITOR_MODES))
        .select_from(per_session)
        .join(days, and_(per_session.c.started >= days.c.ds, per_session.c.started < days.c.de))
        .join(supervisor, supervisor.c.id == per_session.c.supervisor_id)
        .join(operator, operator.c.id == per_session.c.operator_id)
        .group_by(days.c.day, supervisor.c.extension, operator.c.extension)
        .order_by(days.c.day, supervisor.c.extension, operator.c.extension))
    columns = [Column("day"), Column("supervisor"), Column("operator"), Column("sessions", "int"),
               Column("calls", "int"), Column("total", "seconds"),
               *(Column(mode, "seconds") for mode in MONITOR_MODES)]
    return Report("monitoring", period, columns, _rows(session, query))


def build(session: Session, name: str, period: Period, filters: Filters, now: datetime,
          clients: bool = False) -> Report:
    if name == "occupancy":
        return occupancy(session, period, filters, now)
    if name == "calls":
        return calls(session, period, filters, now)
    if name == "results":
        return client_results(session, period, filters) if clients else results(session, period, filters)
    if name == "monitoring":
        return monitoring(session, period, filters, now)
    raise ValidationError(f"report: {name!r} is not one of {', '.join(REPORTS)}")
