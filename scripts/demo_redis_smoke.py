#!/usr/bin/env python3
"""Drives two demo processes that share one Redis (WSGATE_REDIS_URL) with
the Python `websockets` library: a revocation on A closes B's socket, a
ticket from A opens a socket on B once, and a lockout earned on A holds
on B.

Usage: python3 scripts/demo_redis_smoke.py A_BASE_URL B_BASE_URL
Both demos must share WSGATE_JWT_SECRET and WSGATE_REDIS_URL.
Exits non-zero on the first broken expectation.
"""

import asyncio
import json
import sys
import urllib.error
import urllib.request

import websockets

import demo_smoke
from demo_smoke import check, close_of, refused_status

A, B = sys.argv[1], sys.argv[2]


def post(base, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(base + path, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def login(base, username, password=None):
    return post(base, "/login", {"username": username, "password": password or f"{username}-password-1"})


def ws(base):
    return base.replace("http", "ws", 1)


async def main():
    status, body = login(A, "alice")
    check(status == 200, "login on A")
    alice = body["access_token"]
    _, body = login(A, "admin")
    admin = {"Authorization": f"Bearer {body['access_token']}"}

    async with websockets.connect(ws(B) + "/ws", additional_headers={"Authorization": f"Bearer {alice}"}) as socket:
        greeting = json.loads(await socket.recv())
        check(greeting["sub"] == "alice", "A's token opens a socket on B")
        status, body = post(A, "/admin/revoke", {"sub": "alice"}, headers=admin)
        check(status == 200 and body == {"closed": 0}, "revoke on A counts A's sockets (none)")
        check(await close_of(socket) == (4403, "token revoked"), "B's socket closes 4403 after A's revocation")
    check(await refused_status(ws(B) + "/ws", additional_headers={"Authorization": f"Bearer {alice}"}) == 401,
          "B refuses the revoked token")

    _, body = login(A, "alice")
    fresh = body["access_token"]
    status, body = post(A, "/tickets", headers={"Authorization": f"Bearer {fresh}"})
    check(status == 200, "a ticket from A")
    ticket = body["ticket"]
    async with websockets.connect(ws(B) + f"/ws?ticket={ticket}") as socket:
        check(json.loads(await socket.recv())["sub"] == "alice", "A's ticket opens a socket on B")
    check(await refused_status(ws(A) + f"/ws?ticket={ticket}") == 401, "and only once, on either")

    # Five failures spread over both processes lock the account on both.
    for base in [A, B, A, B, A]:
        status, _ = login(base, "admin", "wrong-password")
    status, _ = login(B, "admin")
    check(status == 429, "the lockout counts failures on both processes")
    print(f"{demo_smoke.checks} checks passed")


asyncio.run(main())
