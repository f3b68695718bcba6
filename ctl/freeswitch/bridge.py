"""greenswitch on its own thread, behind a small bridge to the asyncio core.

greenswitch is gevent-based. ctl never monkey-patches the process: the ESL
connection lives on one dedicated OS thread that runs its own gevent hub, and the
two sides talk only through thread-safe hand-offs —
- asyncio → gevent: a thread-safe inbox plus a libev async watcher (whose send() wakes
  the hub from any thread; it also keeps the hub's loop alive) start a greenlet per command;
- gevent → asyncio: `loop.call_soon_threadsafe` resolves the command's future, or
  delivers an event, in FreeSWITCH's order.

Every command has a timeout on the asyncio side. When the connection drops, every
command still waiting fails at once with SwitchUnreachable (never re-sent: a re-sent
originate would place a second call), and `lost` resolves with the reason.

greenswitch quirk (0.0.19, seen against FreeSWITCH 1.10.12): `ESLEvent.parse_data`
URL-decodes the whole frame and splits it into lines, so an event that carries a
body (BACKGROUND_JOB: the job's result) ends up with that body appended to
`headers['Content-Length']` after a newline. `split_event_body` undoes it. (A body
line that itself looks like `Key: value` would still become a header: the bodies ctl
reads — job results such as `+OK <uuid>` or `-ERR NO_ROUTE_DESTINATION` — never do.)
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctl.errors import ActionTimeout, AuthenticationFailed, SwitchUnreachable
from ctl.freeswitch.frames import EventData, encode_command

log = logging.getLogger("ctl.freeswitch")

EventSink = Callable[[EventData], None]


@dataclass(frozen=True)
class Reply:
    """A command's answer: `command/reply` (text in Reply-Text) or `api/response` (text is the body)."""

    content_type: str
    text: str
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.text.startswith("+OK")

    @property
    def job_uuid(self) -> str | None:
        return self.headers.get("Job-UUID")


def split_event_body(headers: dict[str, str]) -> EventData:
    """An event as greenswitch parsed it → its headers and its body (see the module's note)."""
    fixed = dict(headers)
    body: str | None = None
    length = fixed.get("Content-Length")
    if length is not None and "\n" in length:
        first, _, body = length.partition("\n")
        body = body.removeprefix("\n")  # the blank line between the event's headers and its body
        fixed["Content-Length"] = first.strip()
    elif fixed.get("Event-Name") and length is not None:
        # The outer frame's length (the event had no body of its own): not the event's.
        del fixed["Content-Length"]
    fixed.pop("Content-Type", None)  # the frame's (text/event-plain), not the event's
    return EventData(fixed, body)


# Back-pressure (ctl.dispatch): events handed to asyncio and not yet taken are bounded, and so is
# greenswitch's own queue, so when ctl's handlers fall behind greenswitch's reader stops and the
# events wait in FreeSWITCH's socket instead of in memory.
IN_FLIGHT = 64
ESL_QUEUE = 256


class EslBridge:
    """One inbound ESL connection (ctl → FreeSWITCH) on its own gevent thread."""

    def __init__(self, host: str, port: int, password: str, on_event: EventSink,
                 connect_timeout: float = 5.0, command_timeout: float = 5.0, name: str = "freeswitch") -> None:
        self.host, self.port, self.password = host, port, password
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.name = name
        self._on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._hub: Any = None
        self._esl: Any = None
        self._stop: Any = None  # gevent.event.Event, set on the gevent thread
        self._wakeup: Any = None  # the hub's async watcher: send() from any thread
        self._inbox: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = queue.SimpleQueue()
        self._pending: set[asyncio.Future[Reply]] = set()
        self.lost: asyncio.Future[str] | None = None
        self.connected = False
        self._flowing = threading.Event()  # cleared while ctl's event queue is full
        self._flowing.set()
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)

    # -- asyncio side ------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect and authenticate; raise SwitchUnreachable or AuthenticationFailed."""
        if self._thread is not None:
            raise RuntimeError("EslBridge.connect() called twice; make a new bridge to reconnect")
        self._loop = asyncio.get_running_loop()
        self.lost = self._loop.create_future()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, args=(ready,), daemon=True,
                                        name=f"ctl-esl-{self.name}")
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.connect_timeout + 2.0)
        except TimeoutError:
            await self.close()
            raise SwitchUnreachable(f"FreeSWITCH {self.host}:{self.port}: no answer in time") from None
        except BaseException:
            await self._join()
            raise
        self.connected = True

    async def send(self, command: str, headers: dict[str, str] | None = None,
                   timeout: float | None = None) -> Reply:
        """Send one command (api …, bgapi …, event …, sendevent …) and return its reply."""
        wire = encode_command(command, headers)  # refuses CR/LF before anything is queued
        if not self.connected or self._loop is None or self._hub is None:
            raise SwitchUnreachable("not connected to FreeSWITCH")
        future: asyncio.Future[Reply] = self._loop.create_future()
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        self._to_gevent(self._spawn_send, wire.decode("utf-8")[:-2], future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout or self.command_timeout)
        except TimeoutError:
            raise ActionTimeout(f"FreeSWITCH did not answer {command.split(' ', 2)[:2]} in time") from None

    async def api(self, command: str, timeout: float | None = None) -> Reply:
        return await self.send(f"api {command}", timeout=timeout)

    async def close(self) -> None:
        """Say exit, close the socket, and wait for the thread to end."""
        self.connected = False
        if self._stop is not None:
            self._to_gevent(self._stop.set)
        await self._join()
        self._fail_pending("connection to FreeSWITCH closed")

    def _to_gevent(self, function: Callable[..., None], *args: Any) -> None:
        self._inbox.put((function, args))
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.send()

    async def _join(self) -> None:
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5.0)

    def _fail_pending(self, reason: str) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(SwitchUnreachable(reason))
        self._pending.clear()

    def _connection_lost(self, reason: str) -> None:
        self.connected = False
        self._fail_pending(reason)
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(reason)

    def pause_reading(self) -> None:
        """ctl's event queue is full: hold events back (ctl.dispatch.Reader)."""
        self._flowing.clear()

    def resume_reading(self) -> None:
        self._flowing.set()

    def _deliver(self, event: EventData) -> None:
        try:
            self._on_event(event)
        except Exception:  # a failing consumer must never stop the reader
            log.exception("ESL event handler failed on %s", event.name)
        finally:
            self._slots.release()

    # -- gevent thread --------------------------------------------------------------------
    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, *args)

    @staticmethod
    def _settle(future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _thread_main(self, ready: asyncio.Future[None]) -> None:
        import gevent
        import gevent.event

        self._hub = gevent.get_hub()  # this thread's own hub
        self._stop = gevent.event.Event()
        self._wakeup = self._hub.loop.async_()
        self._wakeup.start(self._drain_inbox)
        try:
            self._run_connection(ready)
        finally:
            self._wakeup.stop()
            self._wakeup.close()

    def _drain_inbox(self) -> None:
        while True:
            try:
                function, args = self._inbox.get_nowait()
            except queue.Empty:
                return
            function(*args)

    def _run_connection(self, ready: asyncio.Future[None]) -> None:
        import gevent
        import gevent.queue
        from greenswitch.esl import InboundESL, NotConnectedError

        esl = InboundESL(self.host, self.port, self.password, timeout=self.connect_timeout)
        # Bounded: when ctl holds events back, greenswitch's reader blocks here and stops reading.
        esl._esl_event_queue = gevent.queue.Queue(maxsize=ESL_QUEUE)  # noqa: SLF001 - no public knob
        esl.register_handle("*", self._on_esl_event)
        try:
            with gevent.Timeout(self.connect_timeout):
                esl.connect()
        except ValueError:  # greenswitch: the password was refused
            self._post(self._settle, ready, None, AuthenticationFailed("FreeSWITCH refused the ESL password"))
            self._shutdown(esl, say_exit=False)
            return
        except (NotConnectedError, OSError, gevent.Timeout) as error:
            reason = "timed out" if isinstance(error, gevent.Timeout) else (str(error) or type(error).__name__)
            self._post(self._settle, ready, None,
                       SwitchUnreachable(f"cannot reach FreeSWITCH at {self.host}:{self.port}: {reason}"))
            self._shutdown(esl, say_exit=False)
            return
        self._esl = esl
        self._post(self._settle, ready, None)
        watcher = gevent.spawn(self._watch_reader, esl)
        self._stop.wait()
        watcher.kill()
        self._shutdown(esl)
        self._post(self._connection_lost, "connection to FreeSWITCH closed")

    def _watch_reader(self, esl: Any) -> None:
        reader = esl._receive_events_greenlet  # noqa: SLF001 - greenswitch exposes no "closed" signal
        if reader is not None:
            reader.join()
        self._post(self._connection_lost, "connection to FreeSWITCH lost")
        self._stop.set()

    def _shutdown(self, esl: Any, say_exit: bool = True) -> None:
        import gevent

        try:
            with gevent.Timeout(2.0):
                if esl.connected and say_exit:
                    try:
                        esl.send("exit")
                    except Exception:  # the peer is gone already
                        log.debug("ESL exit not answered")
                esl.connected = False
        except gevent.Timeout:
            log.debug("ESL exit timed out")
        esl._run = False  # noqa: SLF001 - after exit's reply: the reader stops at its next line
        sock = getattr(esl, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the reader sees the end and returns
            except OSError:
                pass
        greenlets = [g for g in (esl._receive_events_greenlet, esl._process_events_greenlet)  # noqa: SLF001
                     if g is not None]
        gevent.killall(greenlets, block=True, timeout=1.0)  # the event processor polls only once a second
        for handle in (getattr(esl, "sock_file", None), sock):
            if handle is not None:
                try:
                    handle.close()
                except (OSError, RuntimeError):
                    pass

    def _spawn_send(self, command: str, future: asyncio.Future[Reply]) -> None:
        import gevent

        gevent.spawn(self._send_in_greenlet, command, future)

    def _send_in_greenlet(self, command: str, future: asyncio.Future[Reply]) -> None:
        esl = self._esl
        try:
            if esl is None or not esl.connected:
                raise SwitchUnreachable("not connected to FreeSWITCH")
            response = esl.send(command)
            headers = dict(response.headers)
            text = str(getattr(response, "data", "") or "")
            reply = Reply(headers.get("Content-Type", ""), text.rstrip("\n") if text else text, headers)
        except SwitchUnreachable as error:
            self._post(self._settle, future, None, error)
            return
        except Exception as error:  # socket errors, greenswitch's NotConnectedError
            self._post(self._settle, future, None, SwitchUnreachable(f"FreeSWITCH connection failed: {error}"))
            return
        self._post(self._settle, future, reply)

    def _on_esl_event(self, event: Any) -> None:
        import gevent

        headers = dict(event.headers)
        if headers.get("Content-Type") == "text/disconnect-notice":
            return  # the reader's end reports the loss
        # Wait (this greenlet only) while ctl's queue is full or enough events are in flight.
        while not (self._flowing.is_set() and self._slots.acquire(blocking=False)):
            if self._stop is not None and self._stop.is_set():
                return
            gevent.sleep(0.01)
        self._post(self._deliver, split_event_body(headers))
