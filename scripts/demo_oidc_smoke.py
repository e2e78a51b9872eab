#!/usr/bin/env python3
"""Drives the running demo with tokens from a real OpenID provider (the
test provider in tests/idp, or any provider with the same clients), with
the Python `websockets` library: every transport, the scope policy, the
admin route, opaque tokens by introspection and their revocation while the
socket is open, and the demo's own tokens still working next to them.

Usage: python3 scripts/demo_oidc_smoke.py DEMO_BASE_URL PROVIDER_URL
The demo must run with WSGATE_OIDC_ISSUER=PROVIDER_URL, the introspection
client credentials of tests/idp, and WSGATE_INTROSPECTION_RECHECK_SECS=1.
Exits non-zero on the first broken expectation.
"""

import asyncio
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import websockets

import demo_smoke
from demo_smoke import check, close_of, refused_status

BASE, PROVIDER = sys.argv[1], sys.argv[2]
WS = BASE.replace("http", "ws", 1)
ORIGIN = "http://127.0.0.1:3000"
CLIENTS = {
    "chat-user": ("chat-user-secret-0123456789", "chat"),
    "chat-admin": ("chat-admin-secret-0123456789", "chat chat:admin"),
}
def request(url, form=None, body=None, headers=None, auth=None):
    headers = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if body is not None:
        data = json.dumps(body).encode()
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def provider_token(client, resource):
    secret, scope = CLIENTS[client]
    status, body = request(PROVIDER + "/token", form={
        "grant_type": "client_credentials", "scope": scope, "resource": resource,
    }, auth=(client, secret))
    assert status == 200, body
    return body["access_token"]


def revoke_at_provider(client, token):
    status, _ = request(PROVIDER + "/token/revocation", form={"token": token},
                        auth=(client, CLIENTS[client][0]))
    assert status == 200


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def welcome(url, **kwargs):
    async with websockets.connect(url, **kwargs) as socket:
        return json.loads(await asyncio.wait_for(socket.recv(), 5))


async def main():
    es256 = provider_token("chat-user", "urn:wsgate:es256")
    rs256 = provider_token("chat-admin", "urn:wsgate:rs256")
    check(es256.count(".") == 2 and rs256.count(".") == 2, "the provider issues JWT access tokens")

    for name, token, sub in [("ES256", es256, "chat-user"), ("RS256", rs256, "chat-admin")]:
        greeting = await welcome(WS + "/ws", additional_headers=bearer(token))
        check(greeting["type"] == "welcome" and greeting["sub"] == sub, f"{name} provider token on Bearer")
    greeting = await welcome(WS + "/ws", subprotocols=["chat.v1", f"wsgate.bearer.{es256}"])
    check(greeting["sub"] == "chat-user", "provider token on the subprotocol transport")
    greeting = await welcome(WS + "/ws", origin=ORIGIN, additional_headers={"Cookie": f"wsgate_token={es256}"})
    check(greeting["sub"] == "chat-user", "provider token in the cookie (with an allowed Origin)")
    status, body = request(BASE + "/tickets", headers=bearer(es256))
    check(status == 200 and "ticket" in body, "a provider token buys a ticket")
    greeting = await welcome(WS + "/ws?ticket=" + body["ticket"])
    check(greeting["sub"] == "chat-user", "the ticket opens the socket")
    async with websockets.connect(WS + "/ws/deferred") as socket:
        await socket.send(json.dumps({"type": "auth", "token": rs256}))
        greeting = json.loads(await asyncio.wait_for(socket.recv(), 5))
        check(greeting["sub"] == "chat-admin", "provider token as the first message")

    # The scope policy: `chat` may talk, only `chat:admin` may kick.
    async with websockets.connect(WS + "/ws", additional_headers=bearer(es256)) as user, \
            websockets.connect(WS + "/ws", additional_headers=bearer(rs256)) as admin:
        await user.recv()
        await admin.recv()
        await user.send(json.dumps({"type": "join", "room": "lobby"}))
        await user.send(json.dumps({"type": "say", "room": "lobby", "text": "hello"}))
        message = json.loads(await asyncio.wait_for(user.recv(), 5))
        check(message == {"type": "message", "room": "lobby", "from": "chat-user", "text": "hello"},
              "scope chat may say")
        await user.send(json.dumps({"type": "admin.kick", "sub": "chat-admin"}))
        reply = json.loads(await asyncio.wait_for(user.recv(), 5))
        check(reply == {"type": "error", "code": "forbidden", "ref": "admin.kick"}, "scope chat may not kick")
        await admin.send(json.dumps({"type": "admin.kick", "sub": "chat-user"}))
        check(await close_of(user) == (4403, "forbidden"), "scope chat:admin kicks")

    status, _ = request(BASE + "/admin/revoke", body={"jti": "nothing"}, headers=bearer(es256))
    check(status == 403, "/admin/revoke refuses scope chat")
    status, body = request(BASE + "/admin/revoke", body={"jti": "nothing"}, headers=bearer(rs256))
    check(status == 200 and body == {"closed": 0}, "/admin/revoke accepts scope chat:admin")

    # Opaque tokens: introspected, and closed once revoked at the provider.
    opaque = provider_token("chat-user", "urn:wsgate:opaque")
    check("." not in opaque, "the provider issues an opaque token")
    async with websockets.connect(WS + "/ws", additional_headers=bearer(opaque)) as socket:
        greeting = json.loads(await socket.recv())
        check(greeting["sub"] == "chat-user", "an opaque token is introspected and opens the socket")
        revoke_at_provider("chat-user", opaque)
        check(await close_of(socket) == (4403, "token revoked"),
              "revoked at the provider: the live socket closes 4403")
    check(await refused_status(WS + "/ws", additional_headers=bearer(opaque)) == 401,
          "the revoked opaque token is refused")

    # A provider token signed with a key nobody published: refused.
    header, payload, _ = es256.split(".")
    check(await refused_status(WS + "/ws", additional_headers=bearer(f"{header}.{payload}.AAAA")) == 401,
          "a provider token with a bad signature is refused")

    # The demo's own tokens still work next to the provider's.
    status, body = request(BASE + "/login", body={"username": "alice", "password": "alice-password-1"})
    check(status == 200, "login still works")
    greeting = await welcome(WS + "/ws", additional_headers=bearer(body["access_token"]))
    check(greeting["sub"] == "alice" and greeting["roles"] == ["user"], "the demo's own token next to them")

    print(f"{demo_smoke.checks} checks passed")


asyncio.run(main())
