#!/usr/bin/env python3
"""Drives the running demo (`cargo run --example chat`) with the Python
`websockets` library, a client the project did not write, and checks the
contract of README.md: login, tickets, every handshake transport, the welcome
frame, rooms, and a few refusals.

Usage: python3 scripts/demo_smoke.py [base URL, default http://127.0.0.1:3000]
                                    [metrics URL, when WSGATE_METRICS_ADDR is set]
With a metrics URL it also scrapes `GET /metrics` before and after, and checks
that the counters moved as handshakes were refused and sockets closed.
Exits non-zero on the first broken expectation.
"""

import asyncio
import base64
import json
import sys
import urllib.error
import urllib.request

import websockets
from websockets.exceptions import InvalidStatus

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000"
METRICS = sys.argv[2] if len(sys.argv) > 2 else None
WS = BASE.replace("http", "ws", 1)
ORIGIN = "http://127.0.0.1:3000"
checks = 0


def check(condition, what):
    global checks
    if not condition:
        print(f"FAIL: {what}")
        sys.exit(1)
    checks += 1
    print(f"ok: {what}")


def scrape(metrics=None):
    """The demo's metrics (at `metrics`, else the command line's), as
    {series: value}."""
    with urllib.request.urlopen((metrics or METRICS) + "/metrics") as response:
        text = response.read().decode()
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


def metrics_moved(before, after):
    moved = lambda name: after.get(name, 0.0) - before.get(name, 0.0)
    check(moved('wsgate_handshakes_total{outcome="deny",reason="missing credentials",transport="none"}') >= 1,
          "metrics: refused handshakes counted by reason")
    check(moved('wsgate_handshakes_total{outcome="allow",transport="bearer"}') >= 1,
          "metrics: accepted handshakes counted by transport")
    check(moved('wsgate_closes_total{code="4403"}') >= 1 and moved('wsgate_closes_total{code="1009"}') >= 1,
          "metrics: closes counted by code")
    check(moved("wsgate_revocations_total") >= 1 and moved("wsgate_messages_denied_total") >= 1,
          "metrics: revocations and denied messages counted")
    check(moved("wsgate_handshake_duration_seconds_count") >= 1, "metrics: handshake latency histogram")
    check(all("alice" not in name and "eyJ" not in name and "127.0.0.1" not in name for name in after),
          "metrics: no subject, token or address in a label")


def parse(raw):
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"text": raw.decode()}


def post(path, body=None, headers=None, method="POST"):
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(BASE + path, data=data if method == "POST" else None, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), parse(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), parse(error.read())


async def welcome_of(url, **kwargs):
    async with websockets.connect(url, **kwargs) as socket:
        return json.loads(await asyncio.wait_for(socket.recv(), 5)), socket.subprotocol


async def refused_status(url, **kwargs):
    try:
        async with websockets.connect(url, **kwargs):
            return None
    except InvalidStatus as error:
        return error.response.status_code


async def close_of(socket, seconds=8):
    try:
        while True:
            await asyncio.wait_for(socket.recv(), seconds)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code, closed.rcvd.reason


def login(username):
    status, _, body = post("/login", {"username": username, "password": f"{username}-password-1"})
    assert status == 200, status
    return body["access_token"]


async def live_connection_checks(token, basic):
    admin = login("admin")

    async with websockets.connect(WS + "/ws", additional_headers=bearer(token)) as socket:
        await socket.recv()
        await asyncio.sleep(1.1)  # a later token has a later exp
        await socket.send(json.dumps({"type": "auth.refresh", "token": login("alice")}))
        reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
        check(reply["type"] == "auth.refreshed" and isinstance(reply["expires_at"], int), "in-band refresh")
        await socket.send(json.dumps({"type": "auth.refresh", "token": admin}))
        check(await close_of(socket) == (4401, "invalid token"), "refresh for another subject closes 4401")

    async with websockets.connect(WS + "/ws/deferred") as socket:
        await socket.send(json.dumps({"type": "auth", "token": token}))
        welcome = json.loads(await asyncio.wait_for(socket.recv(), 5))
        check(welcome["type"] == "welcome" and welcome["sub"] == "alice", "first-message authentication")
    async with websockets.connect(WS + "/ws/deferred") as socket:
        check(await close_of(socket) == (4401, "authentication timeout"), "first-message deadline")

    async with websockets.connect(WS + "/ws", additional_headers=bearer(token)) as victim, \
            websockets.connect(WS + "/ws", additional_headers=bearer(admin)) as boss:
        await victim.recv()
        await boss.recv()
        await boss.send(json.dumps({"type": "admin.kick", "sub": "alice"}))
        check(await close_of(victim) == (4403, "forbidden"), "admin.kick closes the subject's sockets")

    async with websockets.connect(WS + "/ws", additional_headers=bearer(token)) as socket:
        await socket.recv()
        status, _, _ = post("/admin/revoke", {"sub": "alice"}, headers=bearer(token))
        check(status == 403, "revoke needs the admin role")
        status, _, body = post("/admin/revoke", {"sub": "alice"}, headers=bearer(admin))
        check(status == 200 and body == {"closed": 1}, "revoke by subject reports the closed socket")
        check(await close_of(socket) == (4403, "token revoked"), "the revoked socket closes 4403")
    check(await refused_status(WS + "/ws", additional_headers=bearer(token)) == 401, "a revoked token is refused")
    fresh = login("alice")
    async with websockets.connect(WS + "/ws", additional_headers=bearer(fresh)) as socket:
        check(json.loads(await socket.recv())["sub"] == "alice", "a token issued after the revocation works")
        await socket.send("x" * 70_000)
        check(await close_of(socket) == (1009, "message too big"), "a message over 64 KiB closes 1009")
    async with websockets.connect(WS + "/ws/echo", additional_headers=bearer(fresh)) as socket:
        for _ in range(400):
            try:
                await socket.send("{}")
            except websockets.ConnectionClosed:
                break
        check(await close_of(socket) == (4429, "rate limited"), "a message flood closes 4429")


def close_after_raw_frame(token, frame):
    """Opens /ws/echo with `token` over a plain socket, sends `frame` as
    raw bytes (what no WebSocket library sends), returns the close frame's
    code and reason."""
    import socket
    import struct
    host, port = BASE.split("//")[1].split(":")
    connection = socket.create_connection((host, int(port)), timeout=5)
    connection.sendall((
        "GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096)
    data = data.split(b"\r\n\r\n", 1)[1]
    connection.sendall(frame)
    try:
        while chunk := connection.recv(4096):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    while len(data) >= 2:
        opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            length, offset = struct.unpack(">H", data[2:4])[0], 4
        payload, data = data[offset:offset + length], data[offset + length:]
        if opcode == 0x8:
            return struct.unpack(">H", payload[:2])[0], payload[2:].decode()
    return None


def masked_frame(first_byte, payload):
    import os
    key = os.urandom(4)
    return bytes([first_byte, 0x80 | len(payload)]) + key + bytes(
        byte ^ key[index % 4] for index, byte in enumerate(payload))


def hostile_frames_are_refused(token):
    check(close_after_raw_frame(token, masked_frame(0x81, b"caf\xc3\x28")) == (1007, "invalid utf-8"),
          "text that is not UTF-8 closes 1007")
    check(close_after_raw_frame(token, masked_frame(0x83, b"{}")) == (1002, "protocol error"),
          "a reserved opcode closes 1002")


def slow_headers_are_cut_off():
    """A client trickling its request headers (slowloris) is disconnected."""
    import socket
    import time
    host, port = BASE.split("//")[1].split(":")
    connection = socket.create_connection((host, int(port)))
    started = time.time()
    connection.sendall(b"GET / HTTP/1.1\r\n")
    try:
        while time.time() - started < 30:
            connection.sendall(b"X")
            time.sleep(0.5)
    except (BrokenPipeError, ConnectionResetError):
        pass
    elapsed = time.time() - started
    check(elapsed < 15, f"slow request headers are cut off ({elapsed:.1f} s)")


def cookies_of(path, body=None, headers=None):
    """POSTs and returns (status, {cookie name: (value, attributes)}, body),
    every Set-Cookie header kept."""
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(BASE + path, data=data, method="POST", headers=headers or {})
    try:
        response = urllib.request.urlopen(request)
    except urllib.error.HTTPError as error:
        response = error
    cookies = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.partition("=")
        cookies[name.strip()] = (value, attributes)
    return response.status if hasattr(response, "status") else response.code, cookies, parse(response.read())


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def session_checks():
    """Refresh sessions: the cookie, rotation, the grace, reuse as theft,
    logout (DESIGN.md, "Sessions")."""
    status, cookies, body = cookies_of("/login", {"username": "alice", "password": "alice-password-1"})
    refresh, attributes = cookies.get("wsgate_refresh", ("", ""))
    check(status == 200 and len(refresh) == 66 and "HttpOnly" in attributes and "SameSite=Strict" in attributes
          and "Path=/token" in attributes, "login sets wsgate_refresh: HttpOnly, SameSite=Strict, Path=/token")
    sid = claims_of(body["access_token"]).get("sid")
    check(isinstance(sid, str) and len(sid) >= 16, "every access token carries the session's sid")
    socket = await websockets.connect(WS + "/ws", additional_headers=bearer(body["access_token"]))
    await socket.recv()

    cookie = lambda token: {"Cookie": f"wsgate_refresh={token}", "Origin": ORIGIN}
    check(cookies_of("/token", headers={"Cookie": f"wsgate_refresh={refresh}"})[0] == 403,
          "POST /token without an Origin is 403")
    check(cookies_of("/token", headers={"Origin": ORIGIN})[0] == 401, "POST /token without the cookie is 401")
    status, rotated, body = cookies_of("/token", headers=cookie(refresh))
    second = rotated.get("wsgate_refresh", ("",))[0]
    check(status == 200 and body["token_type"] == "Bearer" and second and second != refresh
          and claims_of(body["access_token"]).get("sid") == sid, "POST /token rotates, same sid")
    status, again, _ = cookies_of("/token", headers=cookie(refresh))
    check(status == 200 and again.get("wsgate_refresh", ("",))[0] == second,
          "the previous token within the grace (a second tab) gets the same successor")
    status, third_cookies, _ = cookies_of("/token", headers=cookie(second))
    third = third_cookies.get("wsgate_refresh", ("",))[0]
    check(status == 200 and third not in (refresh, second), "and that one rotates on")
    status, _, body = cookies_of("/token", headers=cookie(refresh))
    check(status == 401 and body == {"error": "invalid_grant"}, "an older spent token is theft: 401 invalid_grant")
    check(await close_of(socket) == (4403, "token revoked"), "the stolen session's socket closes 4403")
    check(cookies_of("/token", headers=cookie(third))[0] == 401, "and its latest refresh token is dead too")
    check(await refused_status(WS + "/ws", additional_headers=bearer(body.get("access_token", "x"))) == 401,
          "its access tokens are refused")

    status, cookies, body = cookies_of("/login", {"username": "alice", "password": "alice-password-1"})
    refresh = cookies["wsgate_refresh"][0]
    socket = await websockets.connect(WS + "/ws", additional_headers=bearer(body["access_token"]))
    await socket.recv()
    status, cleared, _ = cookies_of("/logout", headers=bearer(body["access_token"]))
    check(status == 204 and cleared.get("wsgate_refresh", ("x",))[0] == "", "logout is 204 and clears the cookie")
    check(await close_of(socket) == (4403, "token revoked"), "logout closes the session's sockets")
    check(cookies_of("/token", headers=cookie(refresh))[0] == 401, "and its refresh token is refused")


def page_checks():
    """The page and its files come with headers that defend them."""
    pages = [("/", "text/html"), ("/chat.js", "text/javascript"), ("/chat.css", "text/css"),
             ("/admin", "text/html"), ("/admin.js", "text/javascript"), ("/admin.css", "text/css")]
    for path, kind in pages:
        with urllib.request.urlopen(BASE + path) as response:
            headers = {name.lower(): value for name, value in response.headers.items()}
            body = response.read().decode()
        policy = headers.get("content-security-policy", "")
        check(headers.get("content-type", "").startswith(kind), f"{path} is {kind}")
        check("script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
              and "*" not in policy and "frame-ancestors 'none'" in policy,
              f"{path}: a Content-Security-Policy of its own origin, never framed")
        check(headers.get("x-content-type-options") == "nosniff" and headers.get("referrer-policy") == "no-referrer",
              f"{path}: nosniff and no-referrer")
        if kind == "text/html":
            check("<script>" not in body and "<style>" not in body and "style=" not in body,
                  f"{path}: no inline script or style")


async def account_checks():
    """The account routes over the credential store: create under the
    policy, a password change and a disabled account reaching live
    sockets."""
    import secrets as random
    admin = bearer(login("admin"))
    name = f"carol-{random.token_hex(4)}"
    first, second = "violet-Harbour-47-tundra", "amber-Quarry-81-glacier"
    status, _, body = post("/admin/users", {"username": name, "password": first, "roles": ["user"]}, headers=admin)
    check(status == 201 and body == {"username": name, "roles": ["user"]}, "an admin creates an account")
    status, _, body = post("/admin/users", {"username": name, "password": first, "roles": []}, headers=admin)
    check(status == 409 and body == {"error": "user_exists"}, "a taken username is 409")
    status, _, body = post("/admin/users", {"username": name + "x", "password": "Password123!"}, headers=admin)
    check(status == 400 and body.get("error") == "weak_password" and "Password123!" not in body.get("detail", "x"),
          "a guessable password is refused with the rule, not the password")
    status, _, body = post("/admin/users", {"username": "bad\nname", "password": first}, headers=admin)
    check(status == 400 and body == {"error": "invalid_username"}, "a username with a control character is 400")
    status, _, _ = post("/admin/users", {"username": name + "y", "password": first}, headers=bearer(login("alice")))
    check(status == 403, "a non-admin may not create accounts")

    status, _, body = post("/login", {"username": name, "password": first})
    check(status == 200, "the new account logs in")
    old_token = body["access_token"]
    async with websockets.connect(WS + "/ws", additional_headers=bearer(old_token)) as socket:
        await socket.recv()
        await asyncio.sleep(0.01)
        status, _, _ = post("/account/password", {"current_password": "not-it", "new_password": second},
                            headers=bearer(old_token))
        check(status == 401, "a wrong current password is 401")
        status, _, _ = post("/account/password", {"current_password": first, "new_password": second},
                            headers=bearer(old_token))
        check(status == 204, "a password change is 204")
        check(await close_of(socket) == (4403, "token revoked"), "the password change closes live sockets 4403")
    check(await refused_status(WS + "/ws", additional_headers=bearer(old_token)) == 401,
          "tokens from before the change are refused")
    status, _, body = post("/login", {"username": name, "password": second})
    check(status == 200, "the new password logs in")
    async with websockets.connect(WS + "/ws", additional_headers=bearer(body["access_token"])) as socket:
        await socket.recv()
        status, _, body = post(f"/admin/users/{name}/disable", headers=admin)
        check(status == 200 and body == {"closed": 1}, "disabling reports the closed socket")
        check(await close_of(socket) == (4403, "forbidden"), "a disabled account's socket closes 4403 forbidden")
    status, _, body = post("/login", {"username": name, "password": second})
    check(status == 403 and body == {"error": "account_disabled"}, "a disabled account's login is 403")
    basic = base64.b64encode(f"{name}:{second}".encode()).decode()
    check(await refused_status(WS + "/ws", origin=ORIGIN, additional_headers={"Authorization": f"Basic {basic}"}) == 403,
          "a disabled account's Basic handshake is 403")


async def admin_checks():
    """The routes the admin page is a client of: users, live sockets, a
    kick, and the audit trail as it happens on /admin/events."""
    admin_token = login("admin")
    admin, alice = bearer(admin_token), bearer(login("alice"))
    status, _, body = post("/admin/users", headers=admin, method="GET")
    names = {user["username"]: user for user in body.get("users", [])}
    check(status == 200 and names.get("alice") == {"username": "alice", "roles": ["user"], "disabled": False},
          "an admin lists the users")
    check(all(set(user) == {"username", "roles", "disabled"} for user in names.values()),
          "the list holds no password hash")
    check(post("/admin/users", headers=alice, method="GET")[0] == 403, "a non-admin may not list users")
    check(post("/admin/sockets", method="GET")[0] == 401, "the socket list needs a token")
    check(await refused_status(WS + "/admin/events", subprotocols=["admin.v1", "wsgate.bearer." + login("alice")]) == 403,
          "a non-admin may not watch the audit trail")
    async with websockets.connect(WS + "/admin/events", subprotocols=["admin.v1", "wsgate.bearer." + admin_token]) as feed:
        check(feed.subprotocol == "admin.v1", "the audit feed selects admin.v1")
        async with websockets.connect(WS + "/ws", additional_headers=alice) as socket:
            await socket.recv()
            status, _, body = post("/admin/sockets", headers=admin, method="GET")
            mine = [entry for entry in body.get("sockets", []) if entry["sub"] == "alice"]
            check(status == 200 and len(mine) == 1 and mine[0]["transport"] == "bearer"
                  and mine[0]["opened_at"] <= mine[0]["expires_at"], "the socket list shows alice's socket")
            status, _, body = post("/admin/kick", {"sub": "alice"}, headers=admin)
            check(status == 200 and body == {"closed": 1}, "a kick reports the closed socket")
            check(await close_of(socket) == (4403, "forbidden"), "a kicked socket closes 4403 forbidden")
        frames = []
        # The feed may first replay recent events (earlier closes of
        # alice's sessions among them): wait for the kick's.
        kicked = lambda frame: (frame.get("event", {}).get("event") == "close"
                                and frame["event"].get("sub") == "alice"
                                and frame["event"].get("reason") == "forbidden")
        while not any(kicked(frame) for frame in frames):
            frames.append(json.loads(await asyncio.wait_for(feed.recv(), 5)))
        check(all(frame["type"] == "audit" for frame in frames), "the feed sends audit events")
        seen = [frame["event"] for frame in frames]
        close = seen[-1]
        check(close["code"] == 4403 and close["reason"] == "forbidden", "the feed shows the kick's close as it happens")
        check(all("eyJ" not in json.dumps(event) for event in seen), "no token in the feed")


async def main():
    metrics_before = scrape() if METRICS else {}
    status, headers, body = post("/login", {"username": "alice", "password": "alice-password-1"})
    check(status == 200 and body["token_type"] == "Bearer" and body["expires_in"] > 0, "login alice")
    check("HttpOnly" in headers.get("set-cookie", ""), "login sets an HttpOnly cookie")
    token = body["access_token"]
    status, _, body = post("/login", {"username": "alice", "password": "wrong"})
    check(status == 401 and body == {"error": "invalid_credentials"}, "wrong password is 401")
    status, _, body = post("/login", {"username": "mallory", "password": "wrong"})
    check(status == 401 and body == {"error": "invalid_credentials"}, "unknown user is 401 alike")

    welcome, _ = await welcome_of(WS + "/ws", additional_headers={"Authorization": f"Bearer {token}"})
    check(welcome["type"] == "welcome" and welcome["sub"] == "alice" and welcome["roles"] == ["user"]
          and isinstance(welcome["expires_at"], int), "bearer transport and welcome frame")

    welcome, chosen = await welcome_of(WS + "/ws", subprotocols=["chat.v1", f"wsgate.bearer.{token}"])
    check(welcome["sub"] == "alice" and chosen == "chat.v1", "subprotocol transport selects chat.v1")

    status, _, body = post("/tickets", headers={"Authorization": f"Bearer {token}"})
    check(status == 200 and 0 < body["expires_in"] <= 30, "ticket issued")
    ticket = body["ticket"]
    welcome, _ = await welcome_of(f"{WS}/ws?ticket={ticket}")
    check(welcome["sub"] == "alice", "ticket transport")
    check(await refused_status(f"{WS}/ws?ticket={ticket}") == 401, "ticket is single use")
    status, _, _ = post("/tickets")
    check(status == 401, "tickets need a token")

    welcome, _ = await welcome_of(WS + "/ws", origin=ORIGIN, additional_headers={"Cookie": f"wsgate_token={token}"})
    check(welcome["sub"] == "alice", "cookie transport with an allowed Origin")
    status = await refused_status(WS + "/ws", origin="http://evil.example", additional_headers={"Cookie": f"wsgate_token={token}"})
    check(status == 403, "cookie from a foreign Origin is 403")

    basic = base64.b64encode(b"admin:admin-password-1").decode()
    welcome, _ = await welcome_of(WS + "/ws", origin=ORIGIN, additional_headers={"Authorization": f"Basic {basic}"})
    check(welcome["sub"] == "admin" and welcome["roles"] == ["user", "admin"], "basic transport")

    check(await refused_status(WS + "/ws") == 401, "no credentials is 401")
    check(await refused_status(f"{WS}/ws?access_token={token}") == 400, "token in the query is refused")
    check(await refused_status(WS + "/ws", subprotocols=[f"wsgate.bearer.{token}"]) == 400,
          "token subprotocol without chat.v1 is refused")

    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(WS + "/ws", additional_headers=headers) as first, \
            websockets.connect(WS + "/ws", origin=ORIGIN, additional_headers={"Authorization": f"Basic {basic}"}) as second:
        await first.recv()
        await second.recv()
        await first.send(json.dumps({"type": "join", "room": "lobby"}))
        await second.send(json.dumps({"type": "join", "room": "lobby"}))
        await asyncio.sleep(0.1)
        await second.send(json.dumps({"type": "say", "room": "lobby", "text": "hello from python"}))
        message = json.loads(await asyncio.wait_for(first.recv(), 5))
        check(message == {"type": "message", "room": "lobby", "from": "admin", "text": "hello from python"},
              "a room message reaches another client")
        await first.send(json.dumps({"type": "admin.kick", "sub": "admin"}))
        reply = json.loads(await asyncio.wait_for(first.recv(), 5))
        check(reply == {"type": "error", "code": "forbidden", "ref": "admin.kick"}, "role guard refuses admin.* for a user")

    async with websockets.connect(WS + "/ws/echo", additional_headers=headers) as echo:
        await echo.send("ping 1")
        check(await asyncio.wait_for(echo.recv(), 5) == "ping 1", "echo route echoes")

    page_checks()
    await session_checks()
    await account_checks()
    await admin_checks()
    await live_connection_checks(token, basic)
    hostile_frames_are_refused(login("alice"))
    slow_headers_are_cut_off()
    if METRICS:
        metrics_moved(metrics_before, scrape())

    print(f"{checks} passed, 0 failed")


if __name__ == "__main__":
    asyncio.run(main())
