import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { DpopKey, targetUrl } from "../src/dpop.js";

const decode = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString());

test("htu is the socket's URL as http(s), no query, no default port", () => {
  assert.equal(targetUrl("wss://chat.example:443/ws?ticket=x#y"), "https://chat.example/ws");
  assert.equal(targetUrl("ws://127.0.0.1:3000/ws"), "http://127.0.0.1:3000/ws");
  assert.equal(targetUrl("ws://chat.example:80/ws"), "http://chat.example/ws");
});

test("a proof: typ, ES256, the public JWK only, htm, htu, iat, a fresh jti, ath, nonce; it verifies", async () => {
  const key = await DpopKey.generate();
  assert.equal(key.extractable, false, "the private key cannot be read out");
  const proof = await key.proof({
    method: "GET",
    url: "wss://chat.example/ws",
    nowMs: 1_800_000_000_500,
    accessToken: "the-token",
    nonce: "n-1",
  });
  const [header, claims, signature] = proof.split(".");
  const head = decode(header!);
  assert.equal(head.typ, "dpop+jwt");
  assert.equal(head.alg, "ES256");
  assert.deepEqual(Object.keys(head.jwk).sort(), ["crv", "kty", "x", "y"]);
  const body = decode(claims!);
  assert.equal(body.htm, "GET");
  assert.equal(body.htu, "https://chat.example/ws");
  assert.equal(body.iat, 1_800_000_000);
  assert.equal(body.nonce, "n-1");
  assert.equal(body.ath, createHash("sha256").update("the-token").digest("base64url"));
  const second = decode((await key.proof({ method: "GET", url: "wss://chat.example/ws", nowMs: 0 })).split(".")[1]!);
  assert.notEqual(second.jti, body.jti);
  assert.equal(second.ath, undefined);

  const publicKey = await crypto.subtle.importKey("jwk", head.jwk, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  const valid = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    publicKey,
    new Uint8Array(Buffer.from(signature!, "base64url")),
    new TextEncoder().encode(`${header}.${claims}`),
  );
  assert.ok(valid);

  // RFC 7638: the members crv, kty, x, y in that order, no spaces.
  const { crv, kty, x, y } = head.jwk;
  const expected = createHash("sha256").update(`{"crv":"${crv}","kty":"${kty}","x":"${x}","y":"${y}"}`).digest("base64url");
  assert.equal(await key.thumbprint(), expected);
});
