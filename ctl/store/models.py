"""The store's tables, as SQLAlchemy 2 typed models.

Times are stored in UTC (naive in SQLite, `timestamp with time zone` in
PostgreSQL) and always come back timezone-aware. Enumerated columns are plain
strings guarded by CHECK constraints, so adding a value is a small migration
and both SQLite and PostgreSQL enforce them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("owner", "admin", "supervisor", "operator")
OPERATOR_STATUSES = ("offline", "available", "break", "dnd", "talking", "wrap_up", "suspended")
CALL_STATES = ("created", "ringing", "answered", "bridged", "ended")
DIRECTIONS = ("outbound", "inbound", "internal")
MONITOR_MODES = ("listen", "whisper", "barge")
RECORDING_POLICIES = ("always", "on-demand", "never")
# starting: MixMonitor asked, not yet confirmed; recording/paused: the PBX writes (or mutes);
# stopped: the file is closed; failed: the PBX never wrote it. Only `stopped` can be complete.
RECORDING_STATES = ("starting", "recording", "paused", "stopped", "failed")
# pending: waiting for its time; placing: an automatic callback is being dialed; done,
# overdue (its time passed: a manual one not done, an automatic one not reached), cancelled.
TASK_STATES = ("pending", "placing", "done", "overdue", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


project_members = Table(
    "project_members",
    Base.metadata,
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("operator_id", ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True),
)


class Operator(Base):
    """A person with a phone: operator, supervisor, admin or owner."""

    __tablename__ = "operators"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint(_in("status", OPERATOR_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    extension: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="operator")
    dial_string: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="offline", server_default="offline")
    status_reason: Mapped[str | None] = mapped_column(String(200))
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    projects: Mapped[list[Project]] = relationship(secondary=project_members, back_populates="members")


class Project(Base):
    """A campaign or line of business: its script, its result codes, its operators."""

    __tablename__ = "projects"
    __table_args__ = (CheckConstraint(_in("recording_policy", RECORDING_POLICIES), name="recording_policy"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    script: Mapped[str] = mapped_column(Text, default="", server_default="")
    recording_policy: Mapped[str] = mapped_column(String(16), default="always", server_default="always")
    # None: the [recording] stereo setting decides.
    recording_stereo: Mapped[bool | None] = mapped_column(Boolean)
    # Mix a whispering or barging supervisor into the call's recording (off: the
    # recording holds what the client and the operator said).
    recording_supervisor: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The PBX queue whose calls belong to this project (Asterisk queues.conf name).
    queue: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Longest wrap-up after a call of this project before the operator is made available
    # again (None: [operators] wrapup_seconds; 0: no wrap-up at all).
    wrapup_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    result_codes: Mapped[list[ResultCode]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="ResultCode.code")
    members: Mapped[list[Operator]] = relationship(
        secondary=project_members, back_populates="projects", order_by="Operator.extension")


class ResultCode(Base):
    """A disposition an operator may record after a project call."""

    __tablename__ = "project_result_codes"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    successful: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    project: Mapped[Project] = relationship(back_populates="result_codes")


class Call(Base):
    """One call as the PBX groups it (Asterisk Linkedid), from first ring to hangup."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("node", "pbx_call_id"),
        CheckConstraint(_in("state", CALL_STATES), name="state"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        Index("ix_calls_state", "state"),
        Index("ix_calls_operator_created", "operator_id", "created_at"),
        Index("ix_calls_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    pbx_call_id: Mapped[str] = mapped_column(String(128))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    client_number: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="created")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    bridged_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    hangup_cause: Mapped[str | None] = mapped_column(String(32))
    hangup_cause_code: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    project: Mapped[Project | None] = relationship()
    operator: Mapped[Operator | None] = relationship()


class MonitorSession(Base):
    """A supervisor listening, whispering or barging into an operator's call.

    At most one active session per call: the partial unique index below holds it
    for every controller sharing the store, whatever races them.
    """

    __tablename__ = "monitor_sessions"
    __table_args__ = (
        CheckConstraint(_in("mode", MONITOR_MODES), name="mode"),
        Index("uq_monitor_sessions_active_call", "call_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        Index("ix_monitor_sessions_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    follow: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    spy_channel_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    attached_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))

    mode_changes: Mapped[list[MonitorModeChange]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="MonitorModeChange.changed_at")
    supervisor: Mapped[Operator] = relationship(foreign_keys=[supervisor_id])
    operator: Mapped[Operator] = relationship(foreign_keys=[operator_id])


class MonitorModeChange(Base):
    __tablename__ = "monitor_mode_changes"
    __table_args__ = (CheckConstraint(_in("mode", MONITOR_MODES), name="mode"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("monitor_sessions.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16))  # cli, dtmf, pbx

    session: Mapped[MonitorSession] = relationship(back_populates="mode_changes")


class Recording(Base):
    """The one recording of a call: one file, written by the PBX, described here.

    The PBX's own events drive the row (MixMonitorStart → recording, the channel's
    hangup or MixMonitorStop → stopped); `complete` is set only once ctl has read
    the closed file and found it whole.
    """

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint(_in("state", RECORDING_STATES), name="state"),
        Index("ix_recordings_state", "state"),
        Index("ix_recordings_stopped_at", "stopped_at"),
        # Never reuse the id of a deleted row (a refused start): late PBX events name ids.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    node: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(128))  # the leg MixMonitor runs on
    channel_name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(500))  # as ctl sees it
    pbx_path: Mapped[str] = mapped_column(String(500))  # as the PBX sees it
    stereo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    state: Mapped[str] = mapped_column(String(16), default="starting")
    source: Mapped[str] = mapped_column(String(16))  # policy, cli
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)  # of the audio in the file
    complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    problem: Mapped[str | None] = mapped_column(String(300))
    purged_at: Mapped[datetime | None]

    pauses: Mapped[list[RecordingPause]] = relationship(
        back_populates="recording", cascade="all, delete-orphan", order_by="RecordingPause.paused_at")
    call: Mapped[Call] = relationship()


class RecordingPause(Base):
    """A span during which the recording was muted: silence in the file, same timeline."""

    __tablename__ = "recording_pauses"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    paused_at: Mapped[datetime]
    resumed_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(16))  # cli, feature_code, pbx

    recording: Mapped[Recording] = relationship(back_populates="pauses")


class OperatorStatusChange(Base):
    """Every status change of a person: the base of the occupancy report."""

    __tablename__ = "operator_status_changes"
    __table_args__ = (
        CheckConstraint(_in("to_status", OPERATOR_STATUSES), name="to_status"),
        Index("ix_operator_status_changes_operator_changed", "operator_id", "changed_at"),
        Index("ix_operator_status_changes_changed_at", "changed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16))  # cli, pbx, system
    set_by: Mapped[str | None] = mapped_column(String(16))  # the extension of whoever set it by hand
    # The call a talking or wrap-up status is about.
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))


class BlacklistedNumber(Base):
    """A client number no originate path may dial."""

    __tablename__ = "blacklisted_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """A callback: a client to call back at a time, by hand (a reminder) or by ctl serve."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_in("state", TASK_STATES), name="state"),
        Index("ix_tasks_state_due", "state", "due_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    source_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    auto: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    due_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(16))
    reminded_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The callback placed by ctl serve (its latest attempt), and who it rang.
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    placed_to_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(300))  # why it is done, overdue or cancelled

    project: Mapped[Project | None] = relationship()
    assignee: Mapped[Operator | None] = relationship(foreign_keys=[assignee_id])
    placed_to: Mapped[Operator | None] = relationship(foreign_keys=[placed_to_id])


SECURITY_EVENT_KINDS = ("unauthorised_monitor",)
SECURITY_ACTIONS = ("hung_up", "stopped", "logged")


class SecurityEvent(Base):
    """Something on the PBX that went around ctl's rules: a spy or a recording ctl did not
    start. Shown in `ctl monitor log` beside the sessions ctl did start."""

    __tablename__ = "security_events"
    __table_args__ = (
        CheckConstraint(_in("kind", SECURITY_EVENT_KINDS), name="kind"),
        CheckConstraint(_in("action", SECURITY_ACTIONS), name="action"),
        Index("ix_security_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    # The spying (or recorded) channel, and the channel spied on.
    channel_id: Mapped[str] = mapped_column(String(128))
    channel_name: Mapped[str | None] = mapped_column(String(256))
    target_channel_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(300))


class ApiToken(Base):
    """A bearer token of the HTTP API. It belongs to a person, who is the one acting when it is
    used; only a hash is kept (the token is shown once, when created)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the token, hex: tokens are 256 random bits, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters, to recognise it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()

    operator: Mapped[Operator] = relationship()


class EventRecord(Base):
    """The outbox of the live event stream: one row per change, written in the same
    transaction as the change (ctl.store.outbox), read by /api/v1/events and webhooks."""

    __tablename__ = "events"
    # AUTOINCREMENT on SQLite: ids are never reused, even when a purge empties the table
    # (clients and webhooks resume after the last id they saw).
    __table_args__ = (Index("ix_events_at", "at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))  # e.g. call.bridged, operator.status, monitor.started
    node: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: events outlive purged rows
    # The operator the event is about: an operator's token sees only their own events.
    operator_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)  # JSON


WEBHOOK_DELIVERY_STATES = ("pending", "delivered", "failed")


class Webhook(Base):
    """A receiver of the event stream: each matching event POSTed, signed, at least once and
    in order."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    events: Mapped[str] = mapped_column(String(500))  # comma-separated kinds or prefixes such as call.*
    # The HMAC-SHA256 key of the signature header: kept as given (the receiver holds it too).
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last event looked at: every later event is delivered or queued in order.
    cursor: Mapped[int] = mapped_column(Integer, default=0)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("state", WEBHOOK_DELIVERY_STATES), name="state"),
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_pending", "webhook_id", "state", "event_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[datetime | None]
