// The demo page in a real browser: log in, connect with the subprotocol
// transport, join a room, see a message from a second client, and stay on
// one socket past several token lifetimes: wsgate's browser client
// refreshes in-band from POST /token. Run with `npm test` in this folder.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Demo } from "./harness.mjs";

const tokenLifetime = 6;
const demo = new Demo(process.env.WSGATE_BROWSER_PORT ?? "23418", {
  WSGATE_TOKEN_TTL_SECS: String(tokenLifetime),
});
const { violations, dialogs } = demo;

before(() => demo.start());
after(() => demo.stop());

test("two browsers chat, and the page stays connected past its tokens' lifetimes", async () => {
  const started = Date.now();
  const alice = await demo.chat("alice", "alice-password-1");
  assert.equal(await alice.textContent("#status"), "connected (chat.v1)");
  assert.match(await alice.textContent("#log"), /welcome, alice \(roles: user\)/);

  const admin = await demo.chat("admin", "admin-password-1");
  await admin.fill("#say input[name=text]", "hello from the second browser");
  await admin.click("#say button");
  await alice.waitForSelector('#log div:has-text("[lobby] admin: hello from the second browser")', {
    timeout: 5_000,
  });

  // Client text is text: markup in a message shows as what it is.
  const hostile = "<img src=x onerror=alert(1)>";
  await admin.fill("#say input[name=text]", hostile);
  await admin.click("#say button");
  await alice.waitForSelector(`#log div:has-text("[lobby] admin: ${hostile}")`, { timeout: 5_000 });
  assert.equal((await alice.$$("#log img")).length, 0, "the message made no element");
  assert.deepEqual(dialogs, [], "nothing ran");
  assert.deepEqual(violations, [], "the page itself breaks none of its policy");

  // Three token lifetimes later, still the same socket: refreshed in-band
  // (auth.refreshed), never closed, and messages still arrive.
  await alice.waitForTimeout(3 * tokenLifetime * 1000);
  assert.ok(Date.now() - started >= 3 * tokenLifetime * 1000);
  assert.equal(await alice.textContent("#status"), "connected (chat.v1)");
  assert.doesNotMatch(await alice.textContent("#log"), /closed:/, "the socket never closed");
  await admin.fill("#say input[name=text]", "still there?");
  await admin.click("#say button");
  await alice.waitForSelector('#log div:has-text("[lobby] admin: still there?")', { timeout: 5_000 });
  const welcomes = (await alice.textContent("#log")).match(/welcome, alice/g);
  assert.equal(welcomes.length, 1, "one socket: no reconnect");
  assert.deepEqual(violations, [], "no policy violation");
});

test("the policy is enforced: an inline script is refused and reported", async () => {
  const page = await demo.open("/");
  const before = violations.length;
  const ran = await page.evaluate(async () => {
    const script = document.createElement("script");
    script.textContent = "window.inlineRan = true";
    document.body.append(script);
    await new Promise((resolve) => setTimeout(resolve, 200));
    return window.inlineRan === true;
  });
  assert.equal(ran, false, "the inline script did not run");
  await page.waitForTimeout(200);
  assert.ok(violations.length > before, "the browser reported the violation");
  violations.length = before;
  await page.close();
});
