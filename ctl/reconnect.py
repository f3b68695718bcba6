"""The reconnect loop both PBX adapters share: stay connected until closed, with
exponential back-off and jitter between attempts, and say once why a link was lost."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Protocol

from ctl.errors import AuthenticationFailed, SwitchError, SwitchUnreachable

log = logging.getLogger("ctl.reconnect")


class Reconnectable(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def closing(self) -> bool: ...

    async def connect(self) -> None: ...

    async def hold(self) -> str:
        """Keep the live link (its keepalive) until it is lost; return why."""
        ...

    async def lost(self, reason: str) -> None:
        """After an unwanted loss: tell the subscribers, release what the link held."""
        ...


async def keep_connected(link: Reconnectable, minimum: float, maximum: float, what: str) -> None:
    """`what` names the link in log lines, e.g. 'AMI' or 'FreeSWITCH'."""
    delay = minimum
    while not link.closing:
        if not link.connected:
            try:
                await link.connect()
            except AuthenticationFailed as error:  # will not fix itself, but the operator may fix it
                log.error("%s", error)
            except SwitchUnreachable as error:
                log.warning("%s; retrying in %.1f s", error, delay)
            except SwitchError as error:
                log.warning("%s: %s; retrying in %.1f s", what, error, delay)
            if not link.connected:
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, maximum)
                continue
        delay = minimum
        reason = await link.hold()
        if not link.closing:
            log.warning("lost the %s connection%s; reconnecting", what,
                        "" if reason == "connection lost" else f" ({reason})")
            await link.lost(reason)
