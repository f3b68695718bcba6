"""The HTTP API and its event stream on the real Asterisk: a client following /events sees
a bridged call, a monitor session start, attach, change mode and end, in order; after a restart
of serve it reconnects with Last-Event-ID and misses nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sip_peers import free_port

from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve


class Follower:
    """An SSE client on its own thread, collecting events until its stream ends."""

    def __init__(self, url: str, token: str, last_event_id: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.ended = threading.Event()
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self._thread = threading.Thread(target=self._follow, args=(url, headers), daemon=True)
        self._thread.start()

    def _follow(self, url: str, headers: dict[str, str]) -> None:
        current: dict[str, Any] = {}
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=None)) as reply:
                for line in reply.iter_lines():
                    if line.startswith("id: "):
                        current["id"] = int(line[4:])
                    elif line.startswith("event: "):
                        current["event"] = line[7:]
                    elif line.startswith("data: "):
                        current["data"] = json.loads(line[6:])
                    elif line == "" and current:
                        self.events.append(current)
                        current = {}
        except httpx.HTTPError:
            pass  # serve went away: the stream ends
        finally:
            self.ended.set()

    def kinds(self) -> list[str]:
        return [event["event"] for event in self.events]

    def wait(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        wait_for(lambda: kind in self.kinds(), timeout, message=f"event {kind} (seen: {self.kinds()})")
        return next(event for event in self.events if event["event"] == kind)


class WebhookReceiver:
    """A receiver on loopback that records each POST (headers, raw body)."""

    def __init__(self, port: int) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> list[str]:
        return [headers["x-ctl-event"] for headers, _ in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_client_following_events_sees_the_call_and_the_monitor_across_a_restart(
        ctl: CtlRunner, phones: Phones, asterisk: Sandbox, tmp_path: Path) -> None:
    token = ctl.json("token", "create", "200", "--name", "e2e")["token"]
    # A webhook whose receiver is down at first: it gets everything once it is up.
    hook_port = free_port(socket.SOCK_STREAM)
    secret = "e2e-webhook-secret-0123"
    ctl.run("webhook", "add", f"http://127.0.0.1:{hook_port}/hook", "--events", "call.*,monitor.*",
            "--secret", secret)
    ctl = CtlRunner({**ctl.env, "CTL_WEBHOOKS_BACKOFF_MAX_SECONDS": "2"}, ctl.url)
    base = f"http://127.0.0.1:{ctl.env['CTL_API_PORT']}/api/v1"
    auth = {"Authorization": f"Bearer {token}"}
    phones.phone("101", "answer", hold_ms=120_000)
    phones.clients("answer", hold_ms=120_000)
    phones.phone("200", "answer", hold_ms=120_000)
    serve = Serve(ctl, tmp_path / "serve.log")
    try:
        serve.wait_log("reconciled with the PBX")
        follower = Follower(f"{base}/events", token)
        wait_for(lambda: httpx.get(f"{base}/health", headers=auth).status_code == 200, message="the API")
        call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567")["id"])
        bridged = follower.wait("call.bridged")
        assert bridged["data"]["call"] == call_id and bridged["data"]["operator"] == "101"
        started = httpx.post(f"{base}/monitor/sessions", json={"operator": "101", "mode": "listen"}, headers=auth)
        assert started.status_code == 201, started.text
        session_id = started.json()["session"]
        follower.wait("monitor.attached")
        second = httpx.post(f"{base}/monitor/sessions", json={"operator": "101", "mode": "listen"}, headers=auth)
        assert second.status_code == 409 and second.json()["kind"] == "already_monitored"
        changed = httpx.patch(f"{base}/monitor/sessions/{session_id}", json={"mode": "whisper"}, headers=auth)
        assert changed.status_code == 200, changed.text
        mode = follower.wait("monitor.mode")
        assert mode["data"]["mode"] == "whisper" and mode["data"]["source"] == "api"
        # The policy recorded the call; the API pauses it like the CLI (the same use case).
        follower.wait("recording.started")
        paused = httpx.post(f"{base}/calls/{call_id}/recording/pause", headers=auth)
        assert paused.status_code == 200 and paused.json() == {"call": call_id, "state": "paused", "changed": True}
        follower.wait("recording.paused")
        order = follower.kinds()
        assert order.index("call.bridged") < order.index("monitor.started") < order.index("monitor.attached") \
            < order.index("monitor.mode")
        receiver = WebhookReceiver(hook_port)
        try:
            wait_for(lambda: "monitor.mode" in receiver.kinds(), 30, message="the webhook to catch up")
            hooked = [k for k in follower.kinds() if k.startswith(("call.", "monitor."))]
            assert receiver.kinds()[:len(hooked)] == hooked  # the same events, in the same order
            for headers, body in receiver.posts:
                digest = hmac.new(secret.encode(), headers["x-ctl-timestamp"].encode() + b"." + body, hashlib.sha256)
                assert headers["x-ctl-signature"] == "sha256=" + digest.hexdigest()
                assert json.loads(body)["id"] == int(headers["x-ctl-event-id"])
        finally:
            receiver.close()
        # serve stops; the call ends while it is down; the client comes back after the restart.
        assert serve.stop() == 0
        assert follower.ended.wait(15), "the stream did not end with serve"
        last_seen = follower.events[-1]["id"]
        asterisk.hangup_endpoint("clients")
        serve = Serve(ctl, tmp_path / "serve-2.log")
        serve.wait_log("reconciled with the PBX")
        wait_for(lambda: httpx.get(f"{base}/health", headers=auth).status_code == 200, message="the API again")
        resumed = Follower(f"{base}/events", token, last_event_id=last_seen)
        resumed.wait("call.ended")
        stopped = resumed.wait("monitor.stopped")
        assert stopped["data"]["session"] == session_id
        ids = [event["id"] for event in resumed.events]
        assert ids[0] == last_seen + 1 and ids == list(range(ids[0], ids[0] + len(ids))), ids  # no gap
        assert "pbx.connected" in resumed.kinds()
    finally:
        assert serve.stop() == 0
