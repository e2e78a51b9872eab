#!/usr/bin/env python3
"""Drives two demo processes that share one Redis (WSGATE_REDIS_URL) with
the Python `websockets` library: a revocation on A closes B's socket, a
ticket from A opens a socket on B once, a password change or a disabled
account on A closes the account's socket on B, and a lockout earned on A
holds on B.

Usage: python3 scripts/demo_redis_smoke.py A_BASE_URL B_BASE_URL
Both demos must share WSGATE_JWT_SECRET, WSGATE_REDIS_URL and WSGATE_DATABASE_URL.
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


async def credential_changes_reach_the_other_process(admin):
    """Both processes share the database too: an account made on A logs in
    on B; its password change and its disabling on A close its socket on B."""
    import secrets as random
    name = f"dora-{random.token_hex(4)}"
    first, second = "violet-Harbour-47-tundra", "amber-Quarry-81-glacier"
    status, _ = post(A, "/admin/users", {"username": name, "password": first, "roles": ["user"]}, headers=admin)
    check(status == 201, "an account created on A")
    status, body = login(B, name, first)
    check(status == 200, "logs in on B")
    token = {"Authorization": f"Bearer {body['access_token']}"}
    async with websockets.connect(ws(B) + "/ws", additional_headers=token) as socket:
        await socket.recv()
        status, _ = post(A, "/account/password", {"current_password": first, "new_password": second}, headers=token)
        check(status == 204, "its password changed on A")
        check(await close_of(socket) == (4403, "token revoked"), "the change on A closes its socket on B 4403")
    check(await refused_status(ws(B) + "/ws", additional_headers=token) == 401, "B refuses its earlier token")
    check(login(B, name, first)[0] == 401 and login(B, name, second)[0] == 200, "B takes the new password only")
    _, body = login(B, name, second)
    async with websockets.connect(ws(B) + "/ws", additional_headers={"Authorization": f"Bearer {body['access_token']}"}) as socket:
        await socket.recv()
        status, body = post(A, f"/admin/users/{name}/disable", headers=admin)
        check(status == 200 and body == {"closed": 0}, "disabled on A, which held none of its sockets")
        code, _ = await close_of(socket)
        check(code == 4403, "disabling on A closes its socket on B 4403")
    status, body = login(B, name, second)
    check(status == 403 and body == {"error": "account_disabled"}, "B refuses the disabled account's login")


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

    await credential_changes_reach_the_other_process(admin)

    # Five failures spread over both processes lock the account on both.
    for base in [A, B, A, B, A]:
        status, _ = login(base, "admin", "wrong-password")
    status, _ = login(B, "admin")
    check(status == 429, "the lockout counts failures on both processes")
    print(f"{demo_smoke.checks} checks passed")


asyncio.run(main())
