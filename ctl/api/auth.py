"""Who is asking: the owner of a bearer token over TCP, the local admin over the Unix socket.

The Unix socket's file mode (0660) is its check, as with Docker's socket; a request on it
names the person acting with `by`, as the CLI's --by. Over TCP the token's owner is the one
acting, and a `by` naming someone else is refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request

from ctl.errors import Forbidden
from ctl.services.tokens import authenticate
from ctl.store.engine import Store

# Set by LocalSocket on requests that came over the Unix socket; a TCP request cannot set it.
LOCAL_SCOPE_KEY = "ctl.local"


@dataclass(frozen=True)
class Person:
    id: int
    extension: str
    role: str


@dataclass(frozen=True)
class Caller:
    person: Person | None  # the token's owner; None on the local socket
    local: bool
    # The door kept with what the request changes: "cli" for the ctl command line on the local
    # socket (it says so in X-Ctl-Client), "api" otherwise.
    source: str = "api"

    @property
    def viewer(self) -> tuple[str | None, str | None]:
        """(role, extension) for the visibility rules; (None, None): the local admin sees all."""
        return (self.person.role, self.person.extension) if self.person else (None, None)

    def acting(self, by: str | None) -> str | None:
        """The extension acting for this request: the token's owner, or on the local socket `by`
        (None: the local admin, for requests that need no person)."""
        if self.person is None:
            return by
        if by is not None and by != self.person.extension:
            raise Forbidden(f"a token acts as its owner ({self.person.extension}), not as {by}")
        return self.person.extension


def _person_of(store: Store, token: str) -> Person:
    with store.transaction() as session:
        operator = authenticate(session, token)
        return Person(operator.id, operator.extension, operator.role)


class LocalSocket:
    """ASGI wrapper of the app served on the Unix socket: marks its requests as local."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope = {**scope, LOCAL_SCOPE_KEY: True}
        await self.app(scope, receive, send)  # type: ignore[operator]


async def caller(request: Request) -> Caller:
    if request.scope.get(LOCAL_SCOPE_KEY):
        return Caller(None, True, "cli" if request.headers.get("x-ctl-client") == "cli" else "api")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    store: Store = request.app.state.store
    return Caller(await asyncio.to_thread(_person_of, store, token), False)
