// DPoP from a real browser: the page makes its key with WebCrypto (not
// extractable), signs its proofs with `crypto.subtle.sign`, logs in with a
// proof (a token bound to its key comes back, and no cookie), and opens
// the socket with the proof as a `wsgate.dpop.` subprotocol entry, since a
// browser cannot set the `DPoP` header on a WebSocket. The same proof
// twice, or the token without a proof, opens nothing. The demo runs with
// WSGATE_DPOP=required. Run with `npm test` in this folder.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Demo } from "./harness.mjs";

const demo = new Demo(process.env.WSGATE_BROWSER_DPOP_PORT ?? "23420", { WSGATE_DPOP: "required" });

before(() => demo.start());
after(() => demo.stop());

test("a page's WebCrypto key binds its token and proves it on the socket", async () => {
  const page = await demo.open("/");
  const result = await page.evaluate(async () => {
    const { publicKey, privateKey } = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign", "verify"],
    );
    const { x, y } = await crypto.subtle.exportKey("jwk", publicKey);
    const text = new TextEncoder();
    const base64url = (bytes) =>
      btoa(String.fromCharCode(...new Uint8Array(bytes)))
        .replaceAll("+", "-")
        .replaceAll("/", "_")
        .replace(/=+$/, "");
    const segment = (value) => base64url(text.encode(JSON.stringify(value)));
    // A compact JWS: WebCrypto's ECDSA signature is r || s, as JWS wants.
    const proof = async (htm, htu, token) => {
      const claims = { htm, htu, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID() };
      if (token) claims.ath = base64url(await crypto.subtle.digest("SHA-256", text.encode(token)));
      const header = { typ: "dpop+jwt", alg: "ES256", jwk: { kty: "EC", crv: "P-256", x, y } };
      const signed = `${segment(header)}.${segment(claims)}`;
      const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, text.encode(signed));
      return `${signed}.${base64url(signature)}`;
    };
    // What a handshake with these subprotocol entries gives: the welcome
    // and the chosen protocol, or the close code of a refused one.
    const open = (entries) =>
      new Promise((resolve) => {
        const socket = new WebSocket(`ws://${location.host}/ws`, entries);
        socket.onmessage = (event) => {
          resolve({ welcome: JSON.parse(event.data), protocol: socket.protocol });
          socket.close();
        };
        socket.onclose = (event) => resolve({ closed: event.code });
      });

    const login = await fetch("/login", {
      method: "POST",
      headers: { "content-type": "application/json", DPoP: await proof("POST", `${location.origin}/login`) },
      body: JSON.stringify({ username: "alice", password: "alice-password-1" }),
    });
    const issued = await login.json();
    const token = issued.access_token;
    const claims = JSON.parse(atob(token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")));
    const url = `ws://${location.host}/ws`;
    const good = await proof("GET", url, token);
    const accepted = await open(["chat.v1", `wsgate.bearer.${token}`, `wsgate.dpop.${good}`]);
    const replayed = await open(["chat.v1", `wsgate.bearer.${token}`, `wsgate.dpop.${good}`]);
    const withoutProof = await open(["chat.v1", `wsgate.bearer.${token}`]);
    const anotherPath = await open([
      "chat.v1",
      `wsgate.bearer.${token}`,
      `wsgate.dpop.${await proof("GET", `ws://${location.host}/other`, token)}`,
    ]);
    return {
      loginStatus: login.status,
      tokenType: issued.token_type,
      setsCookie: login.headers.has("set-cookie") || document.cookie !== "",
      // RFC 7638: the SHA-256 of the required members, in order, no spaces.
      cnfMatchesKey:
        claims.cnf?.jkt ===
        base64url(await crypto.subtle.digest("SHA-256", text.encode(JSON.stringify({ crv: "P-256", kty: "EC", x, y })))),
      extractable: privateKey.extractable,
      accepted,
      replayed,
      withoutProof,
      anotherPath,
    };
  });
  assert.equal(result.loginStatus, 200);
  assert.equal(result.tokenType, "DPoP");
  assert.equal(result.setsCookie, false, "a bound token is never a cookie");
  assert.equal(result.cnfMatchesKey, true, "the token is bound to the page's key");
  assert.equal(result.extractable, false, "the private key never leaves WebCrypto");
  assert.equal(result.accepted.welcome?.type, "welcome", JSON.stringify(result.accepted));
  assert.equal(result.accepted.welcome.sub, "alice");
  assert.equal(result.accepted.protocol, "chat.v1", "the token and proof are never echoed");
  // A refused handshake is a failed connection to a page: 1006.
  assert.deepEqual(result.replayed, { closed: 1006 }, "a proof opens one socket");
  assert.deepEqual(result.withoutProof, { closed: 1006 }, "a bound token needs its proof");
  assert.deepEqual(result.anotherPath, { closed: 1006 }, "a proof names its URL");
  assert.deepEqual(demo.violations, []);
  assert.deepEqual(demo.dialogs, []);
});

test("wsgate's browser client: its key stays across reloads, cannot be read, and keeps a bound session going", async () => {
  const page = await demo.open("/");
  const first = await page.evaluate(async () => {
    const { DpopKey } = await import("/wsgate-client.js");
    const key = await DpopKey.load();
    return { jkt: await key.thumbprint(), extractable: key.extractable };
  });
  assert.equal(first.extractable, false, "the private key cannot be read out");
  await page.reload();
  const result = await page.evaluate(async () => {
    const { DpopKey, WsgateClient, fetchToken } = await import("/wsgate-client.js");
    const key = await DpopKey.load();
    const jkt = await key.thumbprint();
    const proof = await key.proof({ method: "POST", url: `${location.origin}/login`, nowMs: Date.now() });
    const login = await fetch("/login", {
      method: "POST",
      headers: { "content-type": "application/json", DPoP: proof },
      body: JSON.stringify({ username: "alice", password: "alice-password-1" }),
    });
    const issued = await login.json();
    const claims = JSON.parse(atob(issued.access_token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")));
    // The client proves the key on the socket, and its refreshes go to
    // /token with a proof too (a bound session's refresh needs one).
    let unused = { token: issued.access_token };
    const client = new WsgateClient({
      url: `ws://${location.host}/ws`,
      protocols: ["chat.v1"],
      dpop: key,
      getToken: async () => {
        if (unused) {
          const token = unused;
          unused = null;
          return token;
        }
        return fetchToken({ url: "/token", dpop: key });
      },
    });
    const welcome = await new Promise((resolve) => {
      client.on("message", ({ json }) => json?.type === "welcome" && resolve(json));
      client.connect();
    });
    const refreshed = await fetchToken({ url: "/token", dpop: key });
    const refreshedClaims = JSON.parse(atob(refreshed.token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")));
    const withoutProof = (await fetch("/token", { method: "POST" })).status;
    client.close();
    return { jkt, tokenType: issued.token_type, cnf: claims.cnf, sub: welcome.sub, refreshedCnf: refreshedClaims.cnf, withoutProof };
  });
  assert.equal(result.jkt, first.jkt, "the same key after a reload (IndexedDB)");
  assert.equal(result.tokenType, "DPoP");
  assert.deepEqual(result.cnf, { jkt: first.jkt });
  assert.equal(result.sub, "alice", "the client's proof opened the socket");
  assert.deepEqual(result.refreshedCnf, { jkt: first.jkt }, "a refresh with a proof stays bound to the key");
  assert.equal(result.withoutProof, 401, "a bound session's refresh needs a proof of its key");
  await page.close();
});
