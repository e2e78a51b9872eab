import assert from "node:assert/strict";
import { test } from "node:test";

import { refreshDelay } from "../src/clock.js";

test("a refresh comes a tenth of the time left before the end, 2 s to 60 s", () => {
  const now = 1_800_000_000_000;
  const at = (secondsLeft: number) => now / 1000 + secondsLeft;
  assert.equal(refreshDelay(at(900), now, 0), 840_000, "15 minutes: 60 s before");
  assert.equal(refreshDelay(at(100), now, 0), 90_000, "100 s: 10 s before");
  assert.equal(refreshDelay(at(10), now, 0), 8_000, "10 s: 2 s before");
  assert.equal(refreshDelay(at(1), now, 0), 0, "late: at once");
  assert.equal(refreshDelay(at(-5), now, 0), 0, "past: at once");
});

test("by the server's clock, whatever the page's says", () => {
  const server = 1_800_000_000_000;
  const expiresAt = server / 1000 + 100;
  // The page's clock is five minutes slow: its offset says so.
  const page = server - 300_000;
  assert.equal(refreshDelay(expiresAt, page, 300_000), 90_000);
  // Without the offset it would wait five minutes too long.
  assert.equal(refreshDelay(expiresAt, page, 0), 360_000);
});
