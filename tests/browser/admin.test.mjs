// The admin page in a real browser, next to the chat page in another tab:
// an admin watches alice's socket appear, revokes her (her tab closes with
// 4403 token revoked, the audit feed shows the revocation and the close),
// kicks her, creates and disables an account; a screenshot of the page is
// kept in target/browser-artefacts. Run with `npm test` in this folder.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import path from "node:path";
import { Demo, artefacts } from "./harness.mjs";

const demo = new Demo(process.env.WSGATE_ADMIN_BROWSER_PORT ?? "23419");
const { violations, dialogs } = demo;

before(() => demo.start());
after(() => demo.stop());

async function adminPage(username, password) {
  const page = await demo.open("/admin");
  await page.fill("#login input[name=username]", username);
  await page.fill("#login input[name=password]", password);
  await page.click("#login button");
  return page;
}

const row = (table, key, value) => `#${table} tbody tr[data-${key}="${value}"]`;

test("an admin watches a revocation close a socket in another tab", async () => {
  const admin = await adminPage("admin", "admin-password-1");
  await admin.waitForSelector('#status:has-text("signed in as admin")', { timeout: 10_000 });
  await admin.waitForSelector('#feed:has-text("(live)")', { timeout: 5_000 });
  assert.equal(await admin.isVisible(row("users", "username", "alice")), true, "the users are listed");

  // Alice's chat tab opens a socket: the admin page lists it at once.
  const alice = await demo.chat("alice", "alice-password-1");
  await admin.waitForSelector(row("sockets", "sub", "alice"), { timeout: 5_000 });
  const cells = await admin.$$eval(`${row("sockets", "sub", "alice")} td`, (tds) => tds.map((td) => td.textContent));
  assert.equal(cells[1], "alice");
  assert.equal(cells[2], "subprotocol");
  assert.notEqual(cells[4], "—", "the expiry is shown");

  await admin.click(`${row("sockets", "sub", "alice")} button:has-text("Revoke")`);
  await alice.waitForSelector('#log div:has-text("closed: 4403 token revoked")', { timeout: 5_000 });
  await admin.waitForSelector('#sockets-result:has-text("revoked alice\'s tokens, sockets closed: 1")');
  await admin.waitForSelector('#event-log li.revoke:has-text("sub=alice")', { timeout: 5_000 });
  await admin.waitForSelector('#event-log li.close:has-text("sub=alice"):has-text("code=4403")', { timeout: 5_000 });
  await admin.waitForSelector(row("sockets", "sub", "alice"), { state: "detached", timeout: 5_000 });

  // A token issued after the revocation works; a kick closes it 4403 forbidden.
  const again = await demo.chat("alice", "alice-password-1");
  await admin.waitForSelector(row("sockets", "sub", "alice"), { timeout: 5_000 });
  await admin.click(`${row("sockets", "sub", "alice")} button:has-text("Kick")`);
  await again.waitForSelector('#log div:has-text("closed: 4403 forbidden")', { timeout: 5_000 });
  await admin.waitForSelector('#sockets-result:has-text("kicked alice, sockets closed: 1")');

  // Accounts: a weak password is refused with the rule; markup in a
  // username is text; a disabled account's socket closes.
  const hostile = "<img src=x onerror=alert(1)>";
  await admin.fill("#create input[name=username]", hostile);
  await admin.fill("#create input[name=password]", "Password123!");
  await admin.click("#create button");
  await admin.waitForSelector('#users-result.error:has-text("refused: weak_password")');
  assert.doesNotMatch(await admin.textContent("#users-result"), /Password123!/, "the password is not echoed");
  await admin.fill("#create input[name=password]", "violet-Harbour-47-tundra");
  await admin.click("#create button");
  await admin.waitForSelector(`#users-result:has-text("created ${hostile} (roles: user)")`);
  const created = await admin.$$eval("#users tbody tr", (rows) => rows.map((tr) => tr.cells[0].textContent));
  assert.ok(created.includes(hostile), "the username shows as text");
  assert.equal((await admin.$$("#users img, #event-log img")).length, 0, "the username made no element");

  const carol = await demo.open("/");
  await carol.fill("#login input[name=username]", hostile);
  await carol.fill("#login input[name=password]", "violet-Harbour-47-tundra");
  await carol.click("#login button");
  await carol.waitForSelector('#status:has-text("connected")', { timeout: 10_000 });
  const hostileRow = await admin.waitForSelector(`#users tbody tr:has(td:text-is("${hostile}"))`);
  await (await hostileRow.$('button:has-text("Disable")')).click();
  await carol.waitForSelector('#log div:has-text("closed: 4403 forbidden")', { timeout: 5_000 });
  await admin.waitForSelector('#users-result:has-text("disabled, sockets closed: 1")');
  await admin.waitForSelector(`#users tbody tr:has(td:text-is("${hostile}")) td.disabled`);

  await admin.waitForTimeout(300);
  const screenshot = path.join(artefacts, "admin-page.png");
  await admin.screenshot({ path: screenshot, fullPage: true });
  assert.ok(statSync(screenshot).size > 10_000, "the screenshot holds the page");
  console.log(`screenshot: ${screenshot}`);

  assert.deepEqual(dialogs, [], "nothing ran");
  assert.deepEqual(violations, [], "the page breaks none of its policy");
});

test("someone who is not an admin sees nothing", async () => {
  const page = await adminPage("alice", "alice-password-1");
  await page.waitForSelector('#status:has-text("not an admin: forbidden")', { timeout: 10_000 });
  assert.equal(await page.isVisible("#console"), false);
  assert.equal(await page.$$eval("#users tbody tr", (rows) => rows.length), 0, "no data reached the page");
  assert.deepEqual(violations, []);
});
