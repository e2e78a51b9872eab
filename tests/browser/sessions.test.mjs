// Sessions that last, in a real browser: the chat page on wsgate's
// browser client (/wsgate-client.js) with 10-second tokens. It stays on
// one socket for a minute; it comes back by itself when the demo
// restarts; a revocation shows why and stays closed; a refresh cookie
// stolen into another browser and used after the owner rotated it ends
// both sessions.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Demo } from "./harness.mjs";

const tokenLifetime = 10;
// A database file, so refresh sessions outlive the process's restart.
const folder = mkdtempSync(path.join(tmpdir(), "wsgate-sessions-"));
const demo = new Demo(process.env.WSGATE_BROWSER_SESSIONS_PORT ?? "23433", {
  WSGATE_TOKEN_TTL_SECS: String(tokenLifetime),
  WSGATE_DATABASE_URL: `sqlite://${path.join(folder, "demo.db")}`,
});
const { violations, dialogs } = demo;

before(() => demo.start());
after(async () => {
  await demo.stop();
  rmSync(folder, { recursive: true, force: true });
});

const welcomes = async (page) => ((await page.textContent("#log")).match(/welcome, /g) ?? []).length;

test("a tab stays on one socket for a minute of 10-second tokens and gets every message", async () => {
  const started = Date.now();
  const alice = await demo.chat("alice", "alice-password-1");
  const admin = await demo.chat("admin", "admin-password-1");
  let sent = 0;
  while (Date.now() - started < 60_000) {
    await admin.fill("#say input[name=text]", `message ${++sent}`);
    await admin.click("#say button");
    await alice.waitForSelector(`#log div:has-text("[lobby] admin: message ${sent}")`, { timeout: 5_000 });
    await alice.waitForTimeout(4_000);
  }
  assert.ok(sent >= 12, `messages sent: ${sent}`);
  assert.equal(await welcomes(alice), 1, "one socket: never reconnected");
  assert.doesNotMatch(await alice.textContent("#log"), /closed:/);
  assert.equal(await alice.textContent("#status"), "connected (chat.v1)");
  await alice.context().close();
  await admin.context().close();
});

test("the demo restarts: the tab reconnects by itself within 10 s and rejoins its room", async () => {
  const alice = await demo.chat("alice", "alice-password-1");
  await demo.restart();
  const back = Date.now();
  await alice.waitForFunction(() => (document.querySelector("#log").textContent.match(/welcome, /g) ?? []).length === 2, null, {
    timeout: 10_000,
  });
  assert.ok(Date.now() - back <= 10_000);
  assert.match(await alice.textContent("#log"), /closed: 1006 \(reconnecting/);
  // Back in the lobby: a message there reaches it.
  const admin = await demo.chat("admin", "admin-password-1");
  await admin.fill("#say input[name=text]", "after the restart");
  await admin.click("#say button");
  await alice.waitForSelector('#log div:has-text("[lobby] admin: after the restart")', { timeout: 5_000 });
  await alice.context().close();
  await admin.context().close();
});

test("a revocation: the tab shows why and stays closed", async () => {
  const alice = await demo.chat("alice", "alice-password-1");
  const admin = await fetch(demo.base + "/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: "admin-password-1" }),
  }).then((response) => response.json());
  const revoked = await fetch(demo.base + "/admin/revoke", {
    method: "POST",
    headers: { authorization: `Bearer ${admin.access_token}`, "content-type": "application/json" },
    body: JSON.stringify({ sub: "alice" }),
  });
  assert.equal(revoked.status, 200);
  await alice.waitForSelector('#log div:has-text("closed: 4403 token revoked")', { timeout: 5_000 });
  assert.equal(await alice.textContent("#status"), "disconnected by the server");
  assert.equal(await alice.isVisible("#login"), true);
  await alice.waitForTimeout(3_000);
  assert.equal(await welcomes(alice), 1, "it stayed closed");
  await alice.context().close();
});

test("a stolen refresh cookie used after the owner rotated it ends both sessions", async () => {
  const owner = await demo.chat("alice", "alice-password-1");
  const stolen = (await owner.context().cookies()).find((cookie) => cookie.name === "wsgate_refresh");
  assert.ok(stolen, "the refresh cookie");
  assert.equal(stolen.httpOnly, true, "no script could have read it");
  const before = await welcomes(owner);
  // The owner's tab rotates it, twice (its in-band refreshes do the same
  // every few seconds): the stolen one is then older than the one a
  // second tab may still show within the grace.
  const rotated = await owner.evaluate(async () => {
    const first = await fetch("/token", { method: "POST" });
    const second = await fetch("/token", { method: "POST" });
    return [first.status, second.status];
  });
  assert.deepEqual(rotated, [200, 200]);
  // The thief's browser, with the cookie as it was.
  const thief = await demo.open("/");
  await thief.context().addCookies([stolen]);
  const answer = await thief.evaluate(async () => {
    const response = await fetch("/token", { method: "POST" });
    return { status: response.status, body: await response.json() };
  });
  assert.deepEqual(answer, { status: 401, body: { error: "invalid_grant" } });
  // The session ended: the owner's socket closes 4403 and stays closed.
  await owner.waitForSelector('#log div:has-text("closed: 4403 token revoked")', { timeout: 5_000 });
  assert.equal(await welcomes(owner), before);
  const afterwards = await owner.evaluate(async () => (await fetch("/token", { method: "POST" })).status);
  assert.equal(afterwards, 401, "the owner's own refresh token is dead too");
  assert.deepEqual(violations, [], "no policy violation anywhere");
  assert.deepEqual(dialogs, []);
});
