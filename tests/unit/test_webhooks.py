"""Webhooks: signed, at least once, in order; retried with back-off, given up after the
configured attempts; a receiver that was down gets everything once it is back."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from ctl.config import CallSettings, OperatorSettings, WebhookSettings
from ctl.errors import ValidationError
from ctl.services.directory import add_operator
from ctl.services.operators import set_status_by_hand
from ctl.services.webhooks import WebhookSender, add_webhook, deliveries, matches, parse_patterns
from ctl.store.engine import Store

SECRET = "a-long-shared-secret"


class Receiver:
    def __init__(self) -> None:
        self.up = True
        self.seen: list[tuple[dict[str, str], dict[str, object]]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503)
        self.seen.append((dict(request.headers), json.loads(request.content)))
        return httpx.Response(204)


def _status(store: Store, value: str) -> None:
    with store.transaction() as session:
        set_status_by_hand(session, OperatorSettings(), "101", value, "lunch" if value == "break" else None, None)


@pytest.fixture
def hooked(store: Store) -> tuple[Store, Receiver, WebhookSender]:
    with store.transaction() as session:
        add_operator(session, CallSettings(), "101", "Anna", "operator", None)
        add_webhook(session, "http://receiver.test/hook", "operator.*", SECRET)
    receiver = Receiver()
    client = httpx.AsyncClient(transport=httpx.MockTransport(receiver.handle))
    settings = WebhookSettings(max_attempts=3, backoff_seconds=0.01, backoff_max_seconds=0.02)
    return store, receiver, WebhookSender(store, settings, client)


async def test_events_are_posted_signed_and_in_order(hooked: tuple[Store, Receiver, WebhookSender]) -> None:
    store, receiver, sender = hooked
    for value in ("available", "break", "available"):
        _status(store, value)
    await sender.tick()
    await sender.settle()
    assert [body["status"] for _, body in receiver.seen] == ["available", "break", "available"]
    headers, body = receiver.seen[1]
    assert headers["x-ctl-event"] == "operator.status" and int(headers["x-ctl-event-id"]) == body["id"]
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    expected = hmac.new(SECRET.encode(), headers["x-ctl-timestamp"].encode() + b"." + raw, hashlib.sha256)
    assert headers["x-ctl-signature"] == "sha256=" + expected.hexdigest()
    await sender.tick()
    await sender.settle()
    assert len(receiver.seen) == 3  # at least once — and here exactly once
    with store.transaction() as session:
        assert {d.state for d in deliveries(session, False, 10)} == {"delivered"}


async def test_a_receiver_that_was_down_gets_everything_in_order(
        hooked: tuple[Store, Receiver, WebhookSender]) -> None:
    store, receiver, sender = hooked
    receiver.up = False
    _status(store, "available")
    _status(store, "break")
    await sender.tick()
    await sender.settle()  # the first fails; the second waits behind it
    assert receiver.seen == []
    receiver.up = True
    import asyncio

    for _ in range(20):
        await sender.tick()
        await sender.settle()
        if len(receiver.seen) == 2:
            break
        await asyncio.sleep(0.02)
    assert [body["status"] for _, body in receiver.seen] == ["available", "break"]
    with store.transaction() as session:
        first = sorted(deliveries(session, False, 10), key=lambda d: d.event_id)[0]
        assert first.attempts == 2 and first.state == "delivered"


async def test_a_delivery_is_given_up_after_its_attempts(hooked: tuple[Store, Receiver, WebhookSender]) -> None:
    import asyncio

    store, receiver, sender = hooked
    receiver.up = False
    _status(store, "available")
    for _ in range(30):
        await sender.tick()
        await sender.settle()
        await asyncio.sleep(0.02)
    with store.transaction() as session:
        [failed] = deliveries(session, True, 10)
        assert failed.attempts == 3 and failed.last_status == 503 and failed.last_error == "HTTP 503"
    receiver.up = True
    _status(store, "break")
    for _ in range(5):
        await sender.tick()
        await sender.settle()
    assert [body["status"] for _, body in receiver.seen] == ["break"]  # the next one goes on


def test_webhook_inputs_are_checked(store: Store) -> None:
    assert parse_patterns("call.*, monitor.started") == ("call.*", "monitor.started")
    assert matches(("call.*",), "call.bridged") and not matches(("call.*",), "monitor.started")
    assert matches(("*",), "pbx.connected")
    with store.transaction() as session:
        for url, events, secret in (("ftp://x/y", "*", None), ("http://user:pw@x/", "*", None),
                                    ("http://x/ y", "*", None), ("http://x/", "call.", None),
                                    ("http://x/", "", None), ("http://x/", "*", "short")):
            with pytest.raises(ValidationError):
                add_webhook(session, url, events, secret)
        made = add_webhook(session, "https://crm.example/ctl", "call.*", None)
        assert made.generated and len(made.secret) >= 32


async def test_a_slow_receiver_holds_up_only_itself(store: Store) -> None:
    import asyncio

    with store.transaction() as session:
        add_operator(session, CallSettings(), "101", "Anna", "operator", None)
        add_webhook(session, "http://slow.test/hook", "*", SECRET)
        add_webhook(session, "http://fast.test/hook", "*", SECRET)
    fast: list[int] = []
    release = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow.test":
            await release.wait()
        else:
            fast.append(int(request.headers["x-ctl-event-id"]))
        return httpx.Response(200)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    sender = WebhookSender(store, WebhookSettings(), client)
    _status(store, "available")
    await sender.tick()
    for _ in range(100):
        if fast:
            break
        await asyncio.sleep(0.02)
    assert len(fast) == 1  # delivered while the slow receiver still holds its first event
    release.set()
    await sender.settle()
    await sender.close()
