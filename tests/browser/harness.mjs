// What the browser tests share: a demo process of their own on a fixed
// loopback port, Debian's Chromium, and pages that record every
// Content-Security-Policy violation and every dialog anything tried to open.
//
// Needs the demo built (`cargo build --example chat`) and Chromium at
// /usr/bin/chromium (or CHROMIUM).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// Where screenshots are kept for a person to look at after the run.
export const artefacts = process.env.WSGATE_ARTEFACTS ?? path.join(root, "target/browser-artefacts");
mkdirSync(artefacts, { recursive: true });

export class Demo {
  // `port` below the ephemeral range (32768+), which other tests' client
  // sockets may hold; `env` adds settings. Accounts live in memory, so
  // every run starts from the two seeded users.
  constructor(port, env = {}) {
    this.base = `http://127.0.0.1:${port}`;
    this.violations = [];
    this.dialogs = [];
    this.env = {
      ...process.env,
      WSGATE_ADDR: `127.0.0.1:${port}`,
      WSGATE_ALLOWED_ORIGINS: this.base,
      WSGATE_DATABASE_URL: "sqlite::memory:",
      ...env,
    };
  }

  async start() {
    await this.#spawn();
    this.browser = await chromium.launch({
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
  }

  async stop() {
    await this.browser?.close();
    this.process?.kill();
  }

  // The demo process killed and started again on the same port (the
  // browser stays): what a deploy or a crash does to the pages open.
  async restart({ downMs = 0 } = {}) {
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    this.process.kill("SIGKILL");
    await exited;
    await sleep(downMs);
    await this.#spawn();
  }

  async #spawn() {
    this.process = spawn(process.env.WSGATE_DEMO ?? path.join(root, "target/debug/examples/chat"), [], {
      env: this.env,
      stdio: "inherit",
    });
    await this.#listening();
  }

  async #listening() {
    for (let attempt = 0; attempt < 100; attempt++) {
      if (this.process.exitCode !== null) throw new Error(`the demo exited with ${this.process.exitCode}`);
      try {
        const response = await fetch(this.base + "/");
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error("the demo did not start");
  }

  // A page at `route`, in a browser context of its own (its own cookies),
  // checked for the policy its response carries.
  async open(route) {
    const context = await this.browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (event) => {
        console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
      });
    });
    page.on("console", (message) => {
      if (/Content Security Policy|CSP violation/i.test(message.text())) this.violations.push(message.text());
    });
    page.on("dialog", async (dialog) => {
      this.dialogs.push(dialog.message());
      await dialog.dismiss();
    });
    const response = await page.goto(this.base + route);
    const headers = response.headers();
    const policy = headers["content-security-policy"] ?? "";
    assert.match(policy, /script-src 'self'/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.doesNotMatch(policy, /unsafe-inline/);
    assert.equal(headers["x-content-type-options"], "nosniff");
    assert.equal(headers["referrer-policy"], "no-referrer");
    return page;
  }

  // The chat page, logged in, connected and in the lobby.
  async chat(username, password) {
    const page = await this.open("/");
    await page.fill("#login input[name=username]", username);
    await page.fill("#login input[name=password]", password);
    await page.click("#login button");
    await page.waitForSelector('#status:has-text("connected")', { timeout: 10_000 });
    await page.click("#join button");
    await page.waitForSelector('#log div:has-text("joined lobby")');
    return page;
  }
}
