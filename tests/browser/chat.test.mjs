// The demo page in a real browser: log in, connect with the subprotocol
// transport, join a room, see a message from a second client, and react to
// a 4401 close when the token expires.
//
// Needs the demo built (`cargo build --example chat`) and Chromium at
// /usr/bin/chromium (or CHROMIUM). Run with `npm test` in this folder.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// Below the ephemeral range (32768+), which other tests' client sockets may hold.
const port = process.env.WSGATE_BROWSER_PORT ?? "23418";
const base = `http://127.0.0.1:${port}`;
const tokenLifetime = 6;
let demo;
let browser;

async function waitForDemo() {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (demo.exitCode !== null) throw new Error(`the demo exited with ${demo.exitCode}`);
    try {
      const response = await fetch(base + "/");
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error("the demo did not start");
}

before(async () => {
  demo = spawn(process.env.WSGATE_DEMO ?? path.join(root, "target/debug/examples/chat"), [], {
    env: {
      ...process.env,
      WSGATE_ADDR: `127.0.0.1:${port}`,
      WSGATE_ALLOWED_ORIGINS: base,
      WSGATE_TOKEN_TTL_SECS: String(tokenLifetime),
    },
    stdio: "inherit",
  });
  await waitForDemo();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  demo?.kill();
});

async function logIn(username, password) {
  const page = await browser.newPage();
  await page.goto(base + "/");
  await page.fill("#login input[name=username]", username);
  await page.fill("#login input[name=password]", password);
  await page.click("#login button");
  await page.waitForSelector('#status:has-text("connected")', { timeout: 10_000 });
  await page.click("#join button");
  await page.waitForSelector('#log div:has-text("joined lobby")');
  return page;
}

test("two browsers chat, and the page reacts when the token expires", async () => {
  const started = Date.now();
  const alice = await logIn("alice", "alice-password-1");
  assert.equal(await alice.textContent("#status"), "connected (chat.v1)");
  assert.match(await alice.textContent("#log"), /welcome, alice \(roles: user\)/);

  const admin = await logIn("admin", "admin-password-1");
  await admin.fill("#say input[name=text]", "hello from the second browser");
  await admin.click("#say button");
  await alice.waitForSelector('#log div:has-text("[lobby] admin: hello from the second browser")', {
    timeout: 5_000,
  });

  // Nothing sent from here on: the server closes the socket at expiry.
  await alice.waitForSelector('#status:has-text("session expired")', { timeout: 15_000 });
  assert.match(await alice.textContent("#log"), /closed: 4401 token expired/);
  assert.ok(Date.now() - started >= (tokenLifetime - 1) * 1000, "closed before the token expired");
  assert.equal(await alice.isVisible("#login"), true, "the login form is back");
});
