#!/usr/bin/env python3
"""Checks the demo served over TLS (WSGATE_TLS_CERT, WSGATE_TLS_KEY) with the
Python `websockets` library: login over HTTPS sets a Secure cookie, `wss://`
works with the subprotocol transport, TLS 1.2 and plain HTTP are refused.

Usage: python3 scripts/demo_tls_smoke.py https://127.0.0.1:PORT CA_FILE
"""

import asyncio
import json
import socket
import ssl
import sys
import urllib.request

import websockets

import demo_smoke
from demo_smoke import check

BASE, CA_FILE = sys.argv[1], sys.argv[2]
HOST, PORT = BASE.split("//")[1].split(":")


context = ssl.create_default_context(cafile=CA_FILE)
request = urllib.request.Request(
    BASE + "/login",
    data=json.dumps({"username": "alice", "password": "alice-password-1"}).encode(),
    method="POST",
)
with urllib.request.urlopen(request, context=context) as response:
    cookie = response.headers.get("set-cookie", "")
    token = json.loads(response.read())["access_token"]
check("Secure" in cookie and "HttpOnly" in cookie, "the login cookie is Secure over TLS")


async def wss():
    url = BASE.replace("https", "wss", 1) + "/ws"
    async with websockets.connect(url, ssl=context, subprotocols=["chat.v1", f"wsgate.bearer.{token}"]) as socket_:
        welcome = json.loads(await asyncio.wait_for(socket_.recv(), 5))
        check(welcome["sub"] == "alice" and socket_.subprotocol == "chat.v1", "wss:// with the subprotocol transport")


asyncio.run(wss())

old = ssl.create_default_context(cafile=CA_FILE)
old.maximum_version = ssl.TLSVersion.TLSv1_2
try:
    with socket.create_connection((HOST, int(PORT))) as raw, old.wrap_socket(raw, server_hostname=HOST):
        check(False, "TLS 1.2 is refused")
except ssl.SSLError:
    check(True, "TLS 1.2 is refused")

with socket.create_connection((HOST, int(PORT))) as raw:
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    raw.settimeout(12)
    try:
        answer = raw.recv(64)
    except OSError:
        answer = b""
check(not answer.startswith(b"HTTP/1.1 200"), "plain HTTP on the TLS port is not served")

print(f"{demo_smoke.checks} passed, 0 failed")
