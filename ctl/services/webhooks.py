"""Webhooks: each event of the stream POSTed to a receiver as JSON, signed with
HMAC-SHA256, at least once and in order (one receiver's events one at a time, oldest first),
retried with exponential back-off and given up after a number of attempts. The sender is its
own task in serve: a slow or dead receiver never delays call handling.

Headers: `X-Ctl-Event-Id` (receivers dedupe on it), `X-Ctl-Event` (the kind),
`X-Ctl-Timestamp` (Unix seconds) and `X-Ctl-Signature: sha256=<hex>`, the HMAC of
`<timestamp>.<body>` with the webhook's secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.config import WebhookSettings
from ctl.errors import NotFound, ValidationError
from ctl.services.events import committed_ids, events_after, last_event_id, safe_point
from ctl.store.engine import Store
from ctl.store.models import Webhook, WebhookDelivery

log = logging.getLogger("ctl.webhooks")
_PATTERN = re.compile(r"\*|[a-z]+(\.\*|\.[a-z_]+)?")
HOLE_WAIT = timedelta(seconds=10)  # as the event stream's
QUEUE_BATCH = 500  # events looked at per webhook and round


def _now() -> datetime:
    return datetime.now(UTC)


def check_url(url: str) -> str:
    url = url.strip()
    if len(url) > 500 or any(ch <= " " for ch in url):
        raise ValidationError("URL: at most 500 characters, no spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ValidationError(f"URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError(f"URL: expected an http:// or https:// address, got {url!r}")
    if parsed.userinfo:
        raise ValidationError("URL: no user or password in it (the signature authenticates ctl)")
    return url


def parse_patterns(text: str) -> tuple[str, ...]:
    """'call.*,monitor.started' → ('call.*', 'monitor.started'); '*' is every event."""
    patterns = tuple(part.strip() for part in text.split(",") if part.strip())
    if not patterns:
        raise ValidationError("--events: name at least one kind, such as call.* or monitor.started, or *")
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise ValidationError(f"--events: {pattern!r} is not an event kind, a prefix such as call.*, or *")
    return patterns


def matches(patterns: tuple[str, ...], kind: str) -> bool:
    return any(p == "*" or p == kind or (p.endswith(".*") and kind.startswith(p[:-1])) for p in patterns)


@dataclass(frozen=True)
class NewWebhook:
    id: int
    url: str
    events: str
    secret: str
    generated: bool  # the secret was made here: show it once


def add_webhook(session: Session, url: str, events: str, secret: str | None) -> NewWebhook:
    url = check_url(url)
    patterns = parse_patterns(events)
    generated = secret is None
    if secret is None:
        secret = secrets.token_urlsafe(32)
    elif len(secret) < 16 or len(secret) > 200 or any(ch <= " " for ch in secret):
        raise ValidationError("--secret: 16 to 200 printable characters, no spaces")
    row = Webhook(url=url, events=",".join(patterns), secret=secret, cursor=last_event_id(session))
    session.add(row)
    session.flush()
    return NewWebhook(row.id, url, row.events, secret, generated)


def list_webhooks(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.id)))


def remove_webhook(session: Session, webhook_id: int) -> Webhook:
    row = session.get(Webhook, webhook_id)
    if row is None:
        raise NotFound(f"no webhook with id {webhook_id}")
    session.delete(row)
    return row


def deliveries(session: Session, failed_only: bool, limit: int) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if failed_only:
        query = query.where(WebhookDelivery.state == "failed")
    return list(session.scalars(query))


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Due:
    delivery_id: int
    event_id: int
    kind: str
    attempts: int
    next_at: datetime
    body: bytes


class WebhookSender:
    """Runs in serve: queues each webhook's new events, then POSTs its oldest pending one."""

    def __init__(self, store: Store, settings: WebhookSettings, client: httpx.AsyncClient | None = None) -> None:
        self.store = store
        self.settings = settings
        self.client = client or httpx.AsyncClient(timeout=settings.timeout_seconds, follow_redirects=False)
        self._busy: set[int] = set()  # webhooks with a delivery in flight
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, interval: float = 0.2) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a store hiccup: the next round tries again
                log.exception("webhook round failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()

    async def tick(self) -> None:
        """Each webhook with nothing in flight gets its own task: a slow receiver holds up only itself."""
        for hook in await asyncio.to_thread(self._hooks):
            if hook[0] in self._busy:
                continue
            self._busy.add(hook[0])
            task = asyncio.create_task(self._advance(*hook), name=f"ctl-webhook-{hook[0]}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the deliveries in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _hooks(self) -> list[tuple[int, str, str]]:
        with self.store.transaction() as session:
            return [(h.id, h.url, h.secret) for h in list_webhooks(session)]

    async def _advance(self, hook_id: int, url: str, secret: str) -> None:
        try:
            await asyncio.to_thread(self._queue, hook_id)
            while True:
                due = await asyncio.to_thread(self._oldest_pending, hook_id)
                if due is None or due.next_at > _now():
                    return  # in order: nothing later goes before this one
                status, error = await self._post(url, secret, due)
                ok = status is not None and 200 <= status < 300
                await asyncio.to_thread(self._record, due, ok, status, error)
                if not ok:
                    return
        except Exception:  # a store hiccup: the next round tries again
            log.exception("webhook delivery round failed", extra={"fields": {"webhook": hook_id}})
        finally:
            self._busy.discard(hook_id)

    def _queue(self, hook_id: int) -> None:
        """Every event after the webhook's cursor that it asked for becomes a pending delivery."""
        with self.store.transaction() as session:
            hook = session.get(Webhook, hook_id)
            if hook is None:
                return
            safe = safe_point(hook.cursor, committed_ids(session, hook.cursor), _now(), HOLE_WAIT)
            if safe == hook.cursor:
                return
            patterns = tuple(hook.events.split(","))
            batch = events_after(session, hook.cursor, None, None, limit=QUEUE_BATCH)
            cursor = safe if len(batch) < QUEUE_BATCH else min(safe, batch[-1].id)
            for event in batch:
                if event.id > cursor:
                    break
                if matches(patterns, event.kind):
                    session.add(WebhookDelivery(webhook_id=hook.id, event_id=event.id, kind=event.kind,
                                                state="pending", attempts=0, next_at=_now()))
            hook.cursor = cursor

    def _oldest_pending(self, hook_id: int) -> _Due | None:
        with self.store.transaction() as session:
            row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id,
                                                               WebhookDelivery.state == "pending")
                                 .order_by(WebhookDelivery.event_id).limit(1))
            if row is None:
                return None
            found = events_after(session, row.event_id - 1, None, None, limit=1)
            if not found or found[0].id != row.event_id:  # purged meanwhile: nothing left to send
                row.state, row.last_error = "failed", "the event was purged before it could be delivered"
                return None  # the next round goes on with the next one
            event = found[0]
            body = json.dumps(event.as_json(), ensure_ascii=False, separators=(",", ":")).encode()
            return _Due(row.id, row.event_id, row.kind, row.attempts, row.next_at, body)

    async def _post(self, url: str, secret: str, due: _Due) -> tuple[int | None, str | None]:
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "ctl-webhooks",
                   "X-Ctl-Event-Id": str(due.event_id), "X-Ctl-Event": due.kind,
                   "X-Ctl-Timestamp": str(timestamp), "X-Ctl-Signature": signature(secret, timestamp, due.body)}
        try:
            reply = await self.client.post(url, content=due.body, headers=headers)
        except httpx.HTTPError as error:
            return None, (str(error) or type(error).__name__)[:300]
        return reply.status_code, None if reply.is_success else f"HTTP {reply.status_code}"

    def _record(self, due: _Due, ok: bool, status: int | None, error: str | None) -> None:
        with self.store.transaction() as session:
            row = session.get(WebhookDelivery, due.delivery_id)
            if row is None:
                return
            row.attempts += 1
            row.last_status, row.last_error = status, error
            if ok:
                row.state, row.delivered_at = "delivered", _now()
            elif row.attempts >= self.settings.max_attempts:
                row.state = "failed"
                log.warning("webhook delivery given up", extra={"fields": {
                    "webhook": row.webhook_id, "event": row.event_id, "attempts": row.attempts, "error": error}})
            else:
                delay = min(self.settings.backoff_seconds * 2 ** (row.attempts - 1), self.settings.backoff_max_seconds)
                row.next_at = _now() + timedelta(seconds=delay)
