import assert from "node:assert/strict";
import { test } from "node:test";

import { defaultRetryPolicy } from "../src/policy.js";

test("close codes: 4401 a fresh token; 4403, 1009 and 1000 never; the rest back off", () => {
  const kind = (code: number) => defaultRetryPolicy(code, "").kind;
  assert.equal(kind(4401), "fresh-token");
  for (const code of [4403, 1009, 1000]) assert.equal(kind(code), "stop", String(code));
  for (const code of [4429, 1006, 1011, 1012, 1013, 1001]) assert.equal(kind(code), "back-off", String(code));
});
