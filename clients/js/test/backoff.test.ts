import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_BACKOFF, backoffDelay } from "../src/backoff.js";

test("the bound doubles from 500 ms up to 30 s, and full jitter draws below it", () => {
  const top = () => 0.999999;
  const bounds = Array.from({ length: 10 }, (_, attempt) => backoffDelay(attempt, DEFAULT_BACKOFF, top) + 1);
  assert.deepEqual(bounds, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  for (let attempt = 0; attempt < 12; attempt++) {
    assert.equal(backoffDelay(attempt, DEFAULT_BACKOFF, () => 0), 0, "full jitter reaches zero");
  }
  assert.equal(backoffDelay(3, { baseMs: 100, capMs: 1000 }, () => 0.5), 400);
  // Nonsense attempts are no attempt at all, and huge ones stay capped.
  assert.equal(backoffDelay(-4, DEFAULT_BACKOFF, top), 499);
  assert.equal(backoffDelay(1e9, DEFAULT_BACKOFF, top), 29999);
});

test("a thousand clients spread over the whole window", () => {
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const delays = Array.from({ length: 1000 }, () => backoffDelay(6, DEFAULT_BACKOFF, random));
  const buckets = new Array(10).fill(0);
  for (const delay of delays) buckets[Math.floor(delay / 3000)]++;
  for (const count of buckets) assert.ok(count > 60 && count < 140, `uneven: ${buckets}`);
});
