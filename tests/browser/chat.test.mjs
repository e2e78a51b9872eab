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

// Every page records the Content-Security-Policy violations it reports
// and the dialogs anything tried to open.
const violations = [];
const dialogs = [];

async function openPage() {
  const page = await browser.newPage();
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  page.on("console", (message) => {
    if (/Content Security Policy|CSP violation/i.test(message.text())) violations.push(message.text());
  });
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  const response = await page.goto(base + "/");
  const policy = response.headers()["content-security-policy"] ?? "";
  assert.match(policy, /script-src 'self'/);
  assert.doesNotMatch(policy, /unsafe-inline/);
  return page;
}

async function logIn(username, password) {
  const page = await openPage();
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

  // Client text is text: markup in a message shows as what it is.
  const hostile = "<img src=x onerror=alert(1)>";
  await admin.fill("#say input[name=text]", hostile);
  await admin.click("#say button");
  await alice.waitForSelector(`#log div:has-text("[lobby] admin: ${hostile}")`, { timeout: 5_000 });
  assert.equal((await alice.$$("#log img")).length, 0, "the message made no element");
  assert.deepEqual(dialogs, [], "nothing ran");
  assert.deepEqual(violations, [], "the page itself breaks none of its policy");

  // Nothing sent from here on: the server closes the socket at expiry.
  await alice.waitForSelector('#status:has-text("session expired")', { timeout: 15_000 });
  assert.match(await alice.textContent("#log"), /closed: 4401 token expired/);
  assert.ok(Date.now() - started >= (tokenLifetime - 1) * 1000, "closed before the token expired");
  assert.equal(await alice.isVisible("#login"), true, "the login form is back");
});

test("the policy is enforced: an inline script is refused and reported", async () => {
  const page = await openPage();
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
