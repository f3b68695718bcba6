"""The HTTP API in process (httpx's ASGI transport) against FakeSwitch, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from ctl.api.app import create_app
from ctl.api.auth import LocalSocket
from ctl.config import CallSettings
from ctl.services.directory import add_operator
from ctl.services.tokens import create_token, revoke_token
from ctl.store.engine import Store
from ctl.testing import FakeSwitch


@pytest.fixture
def people(store: Store) -> dict[str, str]:
    """Operators 101 and 102, supervisor 200; a token for each."""
    tokens = {}
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("102", "operator"), ("200", "supervisor")):
            add_operator(session, CallSettings(), extension, f"Person {extension}", role, None)
        for extension in ("101", "102", "200"):
            tokens[extension] = create_token(session, extension, "test", timedelta(days=1)).token
    return tokens


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, {"asterisk": FakeSwitch()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ctl") as http:
        yield http


@pytest.fixture
async def local(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """As over the Unix socket."""
    app = create_app(store, {"asterisk": FakeSwitch()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=LocalSocket(app)),  # type: ignore[arg-type]
                                 base_url="http://ctl") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_request_over_tcp_needs_a_live_token(client: httpx.AsyncClient, people: dict[str, str],
                                                         store: Store) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("nonsense"), bearer("ctl_" + "A" * 43)):
        reply = await client.get("/api/v1/operators", headers=headers)
        assert reply.status_code == 401, (headers, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["www-authenticate"].startswith("Bearer")
        body = reply.json()
        assert body["kind"] == "unauthenticated" and body["status"] == 401 and body["detail"]
    with store.transaction() as session:
        revoke_token(session, 1)  # 101's
    reply = await client.get("/api/v1/operators", headers=bearer(people["101"]))
    assert reply.status_code == 401 and "revoked" in reply.json()["detail"]
    assert (await client.get("/api/v1/operators", headers=bearer(people["200"]))).status_code == 200


async def test_an_expired_token_is_refused(client: httpx.AsyncClient, store: Store,
                                           people: dict[str, str]) -> None:
    with store.transaction() as session:
        token = create_token(session, "200", "old", timedelta(minutes=1))
        token.row.expires_at = token.row.created_at - timedelta(seconds=1)
    reply = await client.get("/api/v1/operators", headers=bearer(token.token))
    assert reply.status_code == 401 and "expired" in reply.json()["detail"]


async def test_operators_see_themselves_and_supervisors_the_team(client: httpx.AsyncClient,
                                                                 people: dict[str, str]) -> None:
    team = (await client.get("/api/v1/operators", headers=bearer(people["200"]))).json()
    assert [p["extension"] for p in team] == ["101", "102", "200"]
    assert set(team[0]) >= {"extension", "name", "role", "dial_string", "status"}
    mine = (await client.get("/api/v1/operators", headers=bearer(people["101"]))).json()
    assert [p["extension"] for p in mine] == ["101"]
    assert (await client.get("/api/v1/operators/101", headers=bearer(people["101"]))).status_code == 200
    hidden = await client.get("/api/v1/operators/102", headers=bearer(people["101"]))
    assert hidden.status_code == 404 and hidden.json()["kind"] == "not_found"
    assert (await client.get("/api/v1/operators/102", headers=bearer(people["200"]))).json()["name"] == "Person 102"


async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient, people: dict[str, str]) -> None:
    reply = await client.get("/api/v1/operators/12ab", headers=bearer(people["200"]))
    assert reply.status_code == 422
    body = reply.json()
    assert body["kind"] == "invalid" and body["errors"][0]["field"] == "extension"


async def test_the_local_socket_needs_no_token(local: httpx.AsyncClient, people: dict[str, str]) -> None:
    reply = await local.get("/api/v1/operators")
    assert reply.status_code == 200 and len(reply.json()) == 3
    health = (await local.get("/api/v1/health")).json()
    assert health["nodes"] == {"asterisk": False}


async def test_the_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["info"]["title"] == "ctl"
    assert (await client.get("/api/v1/health")).status_code == 401
    assert "/api/v1/operators" in document["paths"] and "Problem" in document["components"]["schemas"]
