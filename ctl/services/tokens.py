"""API tokens: each belongs to a person, who is the one acting when it is used.

A token is 256 random bits, shown once when created; the store keeps its SHA-256 (a
fast hash is enough for a random secret, unlike a password) and its first characters
to recognise it in a list. Expired and revoked tokens authenticate no one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.errors import Conflict, NotFound, Unauthenticated, ValidationError
from ctl.services.directory import get_operator
from ctl.store.models import ApiToken, Operator

TOKEN_PREFIX = "ctl_"
_TOKEN = re.compile(r"ctl_[A-Za-z0-9_-]{43}")
_DURATION = re.compile(r"([1-9][0-9]{0,4})([dhm])")
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most this often


def _now() -> datetime:
    return datetime.now(UTC)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_lifetime(text: str) -> timedelta | None:
    """'90d', '12h', '30m', or 'never'."""
    if text == "never":
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValidationError(f"--expires: expected a number of days, hours or minutes such as 90d, 12h or 30m, "
                              f"or never; got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class NewToken:
    token: str  # the secret itself: shown once, never stored
    row: ApiToken


def create_token(session: Session, extension: str, name: str, lifetime: timedelta | None) -> NewToken:
    person = get_operator(session, extension)
    name = name.strip()
    if not name or len(name) > 100 or any(ch < " " for ch in name):
        raise ValidationError("--name: expected 1-100 printable characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = _now()
    row = ApiToken(operator_id=person.id, name=name, token_hash=digest(token), prefix=token[:10],
                   created_at=now, expires_at=now + lifetime if lifetime is not None else None)
    session.add(row)
    session.flush()
    row.operator = person
    return NewToken(token, row)


def list_tokens(session: Session, extension: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).join(ApiToken.operator).order_by(ApiToken.id)
    if extension is not None:
        query = query.where(Operator.id == get_operator(session, extension).id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is not None:
        raise Conflict(f"API token {token_id} was already revoked")
    row.revoked_at = _now()
    return row


def token_state(row: ApiToken, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def authenticate(session: Session, token: str | None) -> Operator:
    """The person a bearer token belongs to; Unauthenticated for anything else."""
    if not token:
        raise Unauthenticated("an API token is required (Authorization: Bearer <token>; ctl token create EXT)")
    if not _TOKEN.fullmatch(token):
        raise Unauthenticated("that is not an API token of ctl")
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
    now = _now()
    if row is None:
        raise Unauthenticated("unknown API token")
    state = token_state(row, now)
    if state != "active":
        raise Unauthenticated(f"API token {row.id} ({row.name}) is {state}")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row.operator
