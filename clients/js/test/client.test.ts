import assert from "node:assert/strict";
import { test } from "node:test";

import { WsgateClient, type ClientOptions, type Events, type TokenReason } from "../src/client.js";
import { singleFlight } from "../src/single-flight.js";
import { FakeClock, FakePage, FakeSocket, settle } from "./fakes.js";

/** A client over fakes, with what it did. */
function harness(options: Partial<ClientOptions> = {}) {
  const clock = new FakeClock();
  const page = new FakePage();
  const sockets: FakeSocket[] = [];
  const asked: TokenReason[] = [];
  const events: { type: keyof Events; event: unknown }[] = [];
  let issued = 0;
  const client = new WsgateClient({
    url: "wss://chat.example/ws",
    protocols: ["chat.v1"],
    getToken: async (reason) => {
      asked.push(reason);
      issued++;
      return { token: `token-${issued}`, serverTime: clock.now() };
    },
    clock,
    page,
    random: () => 0.5,
    socket: (url, protocols) => {
      const socket = new FakeSocket(url, protocols);
      sockets.push(socket);
      return socket;
    },
    ...options,
  });
  for (const type of ["state", "message", "closed", "error"] as const) {
    client.on(type, (event) => events.push({ type, event }));
  }
  const last = () => sockets[sockets.length - 1]!;
  const welcome = (secondsLeft = 900) =>
    last().receive({ type: "welcome", sub: "alice", roles: ["user"], expires_at: Math.floor(clock.now() / 1000) + secondsLeft });
  return { client, clock, page, sockets, asked, events, last, welcome };
}

test("connects with the application protocol and the token entry, never the token in the URL", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  assert.equal(h.sockets.length, 1);
  assert.equal(h.last().url, "wss://chat.example/ws");
  assert.deepEqual(h.last().protocols, ["chat.v1", "wsgate.bearer.token-1"]);
  h.welcome();
  assert.equal(h.client.state, "open");
  assert.ok(h.client.send({ type: "join", room: "lobby" }));
  assert.deepEqual(h.last().sent, ['{"type":"join","room":"lobby"}']);
});

test("refreshes in-band before expires_at, and again after auth.refreshed", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  h.welcome(900);
  assert.deepEqual(h.clock.pending(), [840_000]);
  await h.clock.advance(840_000);
  assert.deepEqual(h.asked, ["connect", "refresh"]);
  assert.deepEqual(h.last().sent, ['{"type":"auth.refresh","token":"token-2"}']);
  h.last().receive({ type: "auth.refreshed", expires_at: Math.floor(h.clock.now() / 1000) + 900 });
  assert.deepEqual(h.clock.pending(), [840_000]);
  assert.equal(h.sockets.length, 1, "one socket the whole time");
});

test("4401: a fresh token, then at once", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  h.welcome();
  h.last().serverCloses(4401, "token expired");
  await settle();
  assert.equal(h.sockets.length, 2);
  assert.deepEqual(h.asked, ["connect", "expired"]);
  assert.deepEqual(h.last().protocols, ["chat.v1", "wsgate.bearer.token-2"]);
  const closed = h.events.find((event) => event.type === "closed")!.event as Events["closed"];
  assert.deepEqual(closed, { code: 4401, reason: "token expired", retry: { kind: "fresh-token" }, delayMs: 0 });
});

test("4403 and 1009: never again, and the reason is told", async () => {
  for (const [code, reason] of [[4403, "token revoked"], [1009, "message too big"]] as const) {
    const h = harness();
    h.client.connect();
    await settle();
    h.welcome();
    h.last().serverCloses(code, reason);
    await h.clock.advance(120_000);
    assert.equal(h.sockets.length, 1, `${code}: no reconnect`);
    assert.equal(h.client.state, "closed");
    const closed = h.events.find((event) => event.type === "closed")!.event as Events["closed"];
    assert.equal(closed.reason, reason);
    assert.equal(closed.retry.kind, "stop");
  }
});

test("1006, 1011 and 4429: back off with jitter, longer each time, then reconnect", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  h.last().serverCloses(1006);
  await settle();
  assert.equal(h.client.state, "waiting");
  assert.deepEqual(h.clock.pending(), [250], "half (the random draw) of 500 ms");
  await h.clock.advance(250);
  assert.equal(h.sockets.length, 2);
  h.last().serverCloses(1011, "backend unavailable");
  await settle();
  assert.deepEqual(h.clock.pending(), [500]);
  await h.clock.advance(500);
  h.last().serverCloses(4429, "rate limited");
  await settle();
  assert.deepEqual(h.clock.pending(), [1000]);
  await h.clock.advance(1000);
  assert.equal(h.sockets.length, 4);
  // A welcome resets the back-off.
  h.welcome();
  h.last().serverCloses(1006);
  await settle();
  assert.deepEqual(h.clock.pending(), [250]);
});

test("offline, a reconnect waits for online; a hidden tab, for visible", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  h.page.isOnline = false;
  h.last().serverCloses(1006);
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 1, "no attempt while offline");
  h.page.isOnline = true;
  h.page.fire("online");
  await settle();
  assert.equal(h.sockets.length, 2, "back online: at once");

  h.page.isHidden = true;
  h.last().serverCloses(1006);
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 2, "no attempt while hidden");
  h.page.isHidden = false;
  h.page.fire("visibilitychange");
  await settle();
  assert.equal(h.sockets.length, 3);
});

test("pagehide into the back/forward cache closes; pageshow reconnects", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  h.welcome();
  const first = h.last();
  h.page.fire("pagehide", { persisted: true });
  assert.deepEqual(first.closedWith, [1000, "page hidden"]);
  assert.equal(h.client.state, "suspended");
  first.serverCloses(1000);
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 1);
  h.page.fire("pageshow", { persisted: true });
  await settle();
  assert.equal(h.sockets.length, 2);
});

test("a custom retry policy decides", async () => {
  const h = harness({ retryPolicy: () => ({ kind: "stop" }) });
  h.client.connect();
  await settle();
  h.last().serverCloses(1006);
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 1);
  assert.equal(h.client.state, "closed");
});

test("the ticket transport buys a ticket per connection and puts only it in the URL", async () => {
  const bought: string[] = [];
  const h = harness({
    transport: "ticket",
    getTicket: async (token) => {
      bought.push(token.token);
      return `ticket-${bought.length}`;
    },
  });
  h.client.connect();
  await settle();
  assert.equal(h.last().url, "wss://chat.example/ws?ticket=ticket-1");
  assert.deepEqual(h.last().protocols, ["chat.v1"]);
  assert.deepEqual(bought, ["token-1"]);
});

test("concurrent token calls share one fetch", async () => {
  let fetches = 0;
  let release!: () => void;
  const shared = singleFlight(async () => {
    fetches++;
    await new Promise<void>((resolve) => (release = resolve));
    return fetches;
  });
  const calls = [shared(), shared(), shared()];
  await settle();
  release();
  assert.deepEqual(await Promise.all(calls), [1, 1, 1]);
  assert.equal(fetches, 1);
  const later = shared();
  await settle();
  release();
  assert.equal(await later, 2, "a call after the first settled fetches again");
});

test("close() is for good", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  h.welcome();
  h.client.close();
  assert.deepEqual(h.last().closedWith, [1000, "closed by the client"]);
  h.last().serverCloses(1000);
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 1);
  assert.deepEqual(h.clock.pending(), []);
});

test("a server that stops answering: no reply to the refresh in 10 s, the socket is dropped and reopened", async () => {
  const h = harness();
  h.client.connect();
  await settle();
  h.welcome(100);
  await h.clock.advance(90_000);
  assert.equal(h.last().sent.length, 1, "the refresh went out");
  await h.clock.advance(10_000);
  assert.deepEqual(h.last().closedWith, [4000, "no answer"]);
  assert.equal(h.client.state, "waiting");
  const closed = h.events.filter((event) => event.type === "closed").pop()!.event as Events["closed"];
  assert.equal(closed.reason, "no answer from the server");
  await h.clock.advance(250);
  assert.equal(h.sockets.length, 2, "reopened after the back-off");

  // A server that answers keeps the socket.
  h.welcome(100);
  await h.clock.advance(90_000);
  h.last().receive({ type: "auth.refreshed", expires_at: Math.floor(h.clock.now() / 1000) + 100 });
  await h.clock.advance(9_000);
  assert.equal(h.last().closedWith, null);
  assert.equal(h.sockets.length, 2);
});
