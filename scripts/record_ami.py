#!/usr/bin/env python3
"""Record the raw bytes an Asterisk sends on AMI, for protocol-test fixtures.

    record_ami.py --port 15038 --secret S --seconds 8 --out file.ami \
        [--action 'Action: Originate|Channel: PJSIP/101|...']

Logs in as user ctl, sends each --action (fields separated by '|'), and writes
everything the server sends, byte for byte, to --out. Standard library only.
"""
import argparse
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--username", default="ctl")
parser.add_argument("--secret", required=True)
parser.add_argument("--seconds", type=float, default=5)
parser.add_argument("--delay", type=float, default=0.3, help="seconds between login and the actions")
parser.add_argument("--action", action="append", default=[])
parser.add_argument("--out", required=True)
args = parser.parse_args()

with socket.create_connection((args.host, args.port)) as sock, open(args.out, "wb") as out:
    sock.sendall(f"Action: Login\r\nActionID: login-1\r\nUsername: {args.username}\r\n"
                 f"Secret: {args.secret}\r\nEvents: on\r\n\r\n".encode())
    deadline = time.monotonic() + args.seconds
    pending = list(args.action)
    next_action = time.monotonic() + args.delay
    sock.settimeout(0.05)
    number = 1
    while time.monotonic() < deadline:
        if pending and time.monotonic() >= next_action:
            fields = pending.pop(0).split("|")
            number += 1
            sock.sendall(("\r\n".join(fields) + f"\r\nActionID: a-{number}\r\n\r\n").encode())
            next_action = time.monotonic() + args.delay
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        out.write(data)
