"""A few blocking AMI actions for the tests to play a phone's part (e.g. a transfer) — not ctl's adapter."""

from __future__ import annotations

import socket


def _read_message(sock: socket.socket, buffer: bytearray) -> dict[str, str]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("AMI closed the connection")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    block, buffer[:] = bytes(buffer[:end]), buffer[end + 4:]
    message = {}
    for line in block.decode().split("\r\n"):
        key, _, value = line.partition(": ")
        message[key] = value
    return message


def action(port: int, secret: str, **fields: str) -> dict[str, str]:
    """Log in as ctl, send one action, return its response (events are skipped)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        buffer = bytearray()
        while b"\r\n" not in buffer:
            buffer += sock.recv(1024)
        del buffer[:buffer.index(b"\r\n") + 2]  # the banner
        replies = []
        for request in ({"Action": "Login", "Username": "ctl", "Secret": secret, "Events": "off",
                         "ActionID": "1"}, {**fields, "ActionID": "2"}):
            sock.sendall(("".join(f"{k}: {v}\r\n" for k, v in request.items()) + "\r\n").encode())
            while True:
                message = _read_message(sock, buffer)
                if message.get("ActionID") == request["ActionID"] and "Response" in message:
                    replies.append(message)
                    break
        return replies[-1]
