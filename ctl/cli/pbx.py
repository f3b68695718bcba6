"""The PBX a command is about, connected for that one command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from ctl.cli.app import AppContext
from ctl.switch import Switch

T = TypeVar("T")


def switch_for(app: AppContext, *, people: Sequence[str] = (), call_id: int | None = None,
               session_id: int | None = None, supervisor: str | None = None) -> Switch:
    """The adapter of the PBX the request is about (ctl.pbx.switch_for_request), not yet connected."""
    from ctl.pbx import switch_for_request

    settings = app.settings
    store = app.store()
    try:
        return switch_for_request(store, settings, people, call_id, session_id, supervisor)
    finally:
        store.dispose()


@asynccontextmanager
async def connected(switch: Switch) -> AsyncIterator[Switch]:
    """`switch` connected (logged in) for one command, and closed after it."""
    await switch.connect()
    try:
        yield switch
    finally:
        await switch.close()


def on_switch(switch: Switch, use_case: Callable[[Switch], Awaitable[T]]) -> T:
    """Connect, run `use_case` with the connected switch, close."""
    async def run() -> T:
        async with connected(switch):
            return await use_case(switch)

    return asyncio.run(run())
