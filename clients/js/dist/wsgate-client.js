// src/backoff.ts
var DEFAULT_BACKOFF = { baseMs: 500, capMs: 3e4 };
function backoffDelay(attempt, backoff = DEFAULT_BACKOFF, random = Math.random) {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  const bound = Math.min(backoff.capMs, backoff.baseMs * 2 ** exponent);
  return Math.floor(random() * bound);
}

// src/clock.ts
var systemClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle)
};
function refreshDelay(expiresAt, nowMs, offsetMs) {
  const left = expiresAt * 1e3 - (nowMs + offsetMs);
  const margin = Math.min(6e4, Math.max(2e3, left / 10));
  return Math.max(0, Math.floor(left - margin));
}

// src/policy.ts
function defaultRetryPolicy(code, _reason) {
  switch (code) {
    case 4401:
      return { kind: "fresh-token" };
    case 4403:
    case 1009:
    case 1e3:
      return { kind: "stop" };
    default:
      return { kind: "back-off" };
  }
}

// src/single-flight.ts
function singleFlight(fetch2) {
  let inFlight = null;
  return () => {
    if (inFlight === null) {
      inFlight = fetch2().finally(() => {
        inFlight = null;
      });
    }
    return inFlight;
  };
}

// src/client.ts
var WsgateClient = class {
  constructor(options) {
    this.listeners = /* @__PURE__ */ new Map();
    this.socket = null;
    this.timer = null;
    this.refreshTimer = null;
    this.answerTimer = null;
    this.attempt = 0;
    this.offsetMs = 0;
    this.current = "idle";
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.retryPolicy = options.retryPolicy ?? defaultRetryPolicy;
    let reason = "connect";
    const shared = singleFlight(() => options.getToken(reason));
    this.token = (why) => {
      reason = why;
      return shared();
    };
    this.page = options.page === void 0 ? browserPage() : options.page;
    for (const type of ["online", "pagehide", "pageshow", "visibilitychange"]) {
      this.page?.addEventListener(type, (event) => this.pageChanged(type, event));
    }
  }
  /** The state. */
  get state() {
    return this.current;
  }
  /** Listens to `type`; returns a function that stops listening. */
  on(type, listener) {
    let set = this.listeners.get(type);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.listeners.set(type, set);
    }
    const listeners = set;
    listeners.add(listener);
    return () => listeners.delete(listener);
  }
  /** Opens the socket (and keeps it open, as the close codes allow). */
  connect() {
    if (this.current === "connecting" || this.current === "open") return;
    this.attempt = 0;
    void this.open("connect");
  }
  /** Sends `data` on the open socket; false when it is not open. */
  send(data) {
    if (!this.socket || this.current !== "open") return false;
    this.socket.send(typeof data === "string" ? data : JSON.stringify(data));
    return true;
  }
  /** Closes the socket for good (1000). */
  close() {
    this.stopTimers();
    this.setState("closed");
    const socket = this.socket;
    this.socket = null;
    socket?.close(1e3, "closed by the client");
  }
  emit(type, event) {
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }
  setState(state) {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", { state });
  }
  stopTimers() {
    for (const timer of [this.timer, this.refreshTimer, this.answerTimer]) {
      if (timer !== null) this.clock.clearTimeout(timer);
    }
    this.timer = null;
    this.refreshTimer = null;
    this.answerTimer = null;
  }
  learnServerTime(token) {
    if (token.serverTime !== void 0) this.offsetMs = token.serverTime - this.clock.now();
  }
  async open(reason) {
    this.setState("connecting");
    let protocols = [...this.options.protocols];
    let url = this.options.url;
    try {
      const token = await this.token(reason);
      if (this.current !== "connecting") return;
      this.learnServerTime(token);
      if (this.options.transport === "ticket") {
        if (!this.options.getTicket) throw new Error("the ticket transport needs getTicket");
        const ticket = await this.options.getTicket(token);
        const parsed = new URL(url);
        parsed.searchParams.set("ticket", ticket);
        url = parsed.toString();
      } else {
        protocols.push(`wsgate.bearer.${token.token}`);
      }
      if (this.options.dpop) {
        const proof = await this.options.dpop.proof({
          method: "GET",
          url: this.options.url,
          nowMs: this.clock.now() + this.offsetMs,
          ...this.options.transport === "ticket" ? {} : { accessToken: token.token },
          ...this.nonce()
        });
        protocols.push(`wsgate.dpop.${proof}`);
      }
    } catch (error) {
      this.emit("error", { error });
      this.scheduleReconnect({ kind: "back-off" }, 1006, "no token");
      return;
    }
    if (this.current !== "connecting") return;
    const factory = this.options.socket ?? ((url2, protocols2) => new WebSocket(url2, protocols2));
    const socket = factory(url, protocols);
    this.socket = socket;
    socket.onopen = () => {
      if (socket === this.socket) this.setState("open");
    };
    socket.onmessage = (event) => this.received(socket, String(event.data));
    socket.onclose = (event) => this.closed(socket, event.code, event.reason);
    socket.onerror = () => {
    };
  }
  nonce() {
    const nonce = this.options.dpopNonce?.();
    return nonce === void 0 ? {} : { nonce };
  }
  received(socket, data) {
    if (socket !== this.socket) return;
    if (this.answerTimer !== null) {
      this.clock.clearTimeout(this.answerTimer);
      this.answerTimer = null;
    }
    let json = void 0;
    try {
      json = JSON.parse(data);
    } catch {
    }
    this.attempt = 0;
    this.setState("open");
    const message = json;
    if (message && typeof message === "object") {
      if ((message.type === "welcome" || message.type === "auth.refreshed") && typeof message.expires_at === "number") {
        this.scheduleRefresh(message.expires_at);
      }
    }
    this.emit("message", { data, json });
  }
  /** Refreshes in-band before the server's `expires_at`, by the server's
   * clock. */
  scheduleRefresh(expiresAt) {
    if (this.refreshTimer !== null) this.clock.clearTimeout(this.refreshTimer);
    const delay = refreshDelay(expiresAt, this.clock.now(), this.offsetMs);
    this.refreshTimer = this.clock.setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh();
    }, delay);
  }
  async refresh() {
    const socket = this.socket;
    try {
      const token = await this.token("refresh");
      this.learnServerTime(token);
      if (socket === null || socket !== this.socket || this.current !== "open") return;
      socket.send(JSON.stringify({ type: this.options.refreshType ?? "auth.refresh", token: token.token }));
      this.answerTimer = this.clock.setTimeout(() => {
        this.answerTimer = null;
        if (socket !== this.socket) return;
        this.socket = null;
        this.stopTimers();
        socket.close(4e3, "no answer");
        this.scheduleReconnect({ kind: "back-off" }, 1006, "no answer from the server");
      }, this.options.answerTimeoutMs ?? 1e4);
    } catch (error) {
      this.emit("error", { error });
      this.refreshTimer = this.clock.setTimeout(() => void this.refresh(), 5e3);
    }
  }
  closed(socket, code, reason) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.stopTimers();
    if (this.current === "closed" || this.current === "suspended") return;
    const retry = this.retryPolicy(code, reason);
    this.scheduleReconnect(retry, code, reason);
  }
  scheduleReconnect(retry, code, reason) {
    if (retry.kind === "stop") {
      this.emit("closed", { code, reason, retry });
      this.setState("closed");
      return;
    }
    if (retry.kind === "fresh-token") {
      this.emit("closed", { code, reason, retry, delayMs: 0 });
      void this.open("expired");
      return;
    }
    const delayMs = backoffDelay(this.attempt++, this.options.backoff ?? DEFAULT_BACKOFF, this.options.random);
    this.emit("closed", { code, reason, retry, delayMs });
    this.setState("waiting");
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.page && (!this.page.online() || this.page.hidden())) return;
      void this.open("connect");
    }, delayMs);
  }
  /** The page's life: back online or visible again → reconnect now; going
   * into the back/forward cache → close (it cannot keep a socket), and
   * reconnect when it comes back. */
  pageChanged(type, event) {
    const page = this.page;
    switch (type) {
      case "online":
      case "visibilitychange":
        if (this.current === "waiting" && page && page.online() && !page.hidden()) {
          this.stopTimers();
          void this.open("connect");
        }
        break;
      case "pagehide":
        if (event.persisted && (this.current === "open" || this.current === "connecting" || this.current === "waiting")) {
          this.stopTimers();
          this.setState("suspended");
          const socket = this.socket;
          this.socket = null;
          socket?.close(1e3, "page hidden");
        }
        break;
      case "pageshow":
        if (this.current === "suspended") {
          this.attempt = 0;
          void this.open("connect");
        }
        break;
      default:
        break;
    }
  }
};
function browserPage() {
  if (typeof window === "undefined" || typeof document === "undefined") return null;
  return {
    addEventListener: (type, listener) => {
      const target = type === "visibilitychange" ? document : window;
      target.addEventListener(type, listener);
    },
    removeEventListener: (type, listener) => {
      const target = type === "visibilitychange" ? document : window;
      target.removeEventListener(type, listener);
    },
    online: () => navigator.onLine,
    hidden: () => document.visibilityState === "hidden"
  };
}

// src/dpop.ts
var DATABASE = "wsgate";
var STORE = "keys";
function base64url(bytes) {
  const array = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let text = "";
  for (const byte of array) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function base64urlText(text) {
  return base64url(new TextEncoder().encode(text));
}
function targetUrl(url) {
  const parsed = new URL(url);
  const scheme = parsed.protocol === "wss:" ? "https:" : parsed.protocol === "ws:" ? "http:" : parsed.protocol;
  const host = parsed.host;
  return `${scheme}//${host}${parsed.pathname}`;
}
var DpopKey = class _DpopKey {
  constructor(pair, jwk) {
    this.pair = pair;
    this.jwk = jwk;
  }
  /** A new key pair, in memory only (nothing persisted). */
  static async generate() {
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    return _DpopKey.of(pair);
  }
  /** The key pair kept in IndexedDB under `name`, made (non-extractable)
   * the first time. A key pair is stored as the CryptoKey objects
   * themselves: IndexedDB keeps them without ever exposing the private
   * bytes. */
  static async load(name = "dpop") {
    const database = await open();
    const stored = await request(
      database.transaction(STORE, "readonly").objectStore(STORE).get(name)
    );
    if (stored) return _DpopKey.of(stored);
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    await request(database.transaction(STORE, "readwrite").objectStore(STORE).put(pair, name));
    return _DpopKey.of(pair);
  }
  static async of(pair) {
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    return new _DpopKey(pair, { kty, crv, x, y });
  }
  /** Whether the private key can be read out (never, for keys made here). */
  get extractable() {
    return this.pair.privateKey.extractable;
  }
  /** The RFC 7638 thumbprint of the public key: the `jkt` a bound token
   * names. */
  async thumbprint() {
    const { crv, kty, x, y } = this.jwk;
    const canonical = JSON.stringify({ crv, kty, x, y });
    return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical)));
  }
  /** A proof for `method` `url` (at `nowMs` by the server's clock), for
   * `accessToken` (its hash as `ath`) and the server's `nonce`, if any. */
  async proof(options) {
    const header = { typ: "dpop+jwt", alg: "ES256", jwk: this.jwk };
    const claims = {
      htm: options.method,
      htu: targetUrl(options.url),
      iat: Math.floor(options.nowMs / 1e3),
      jti: base64url(crypto.getRandomValues(new Uint8Array(16)))
    };
    if (options.accessToken !== void 0) {
      claims.ath = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(options.accessToken)));
    }
    if (options.nonce !== void 0) claims.nonce = options.nonce;
    const signed = `${base64urlText(JSON.stringify(header))}.${base64urlText(JSON.stringify(claims))}`;
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      this.pair.privateKey,
      new TextEncoder().encode(signed)
    );
    return `${signed}.${base64url(signature)}`;
  }
};
function open() {
  const opening = indexedDB.open(DATABASE, 1);
  opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
  return request(opening);
}
function request(request2) {
  return new Promise((resolve, reject) => {
    request2.onsuccess = () => resolve(request2.result);
    request2.onerror = () => reject(request2.error);
  });
}

// src/token-route.ts
async function fetchToken(route) {
  const headers = {};
  if (route.dpop) {
    const absolute = new URL(route.url, location.href).toString();
    headers.DPoP = await route.dpop.proof({
      method: "POST",
      url: absolute,
      nowMs: Date.now(),
      ...route.nonce?.value === void 0 ? {} : { nonce: route.nonce.value }
    });
  }
  const response = await fetch(route.url, { method: "POST", headers, credentials: "same-origin" });
  const nonce = response.headers.get("DPoP-Nonce");
  if (nonce !== null && route.nonce) route.nonce.value = nonce;
  if (!response.ok) {
    throw Object.assign(new Error(`token route answered ${response.status}`), { status: response.status });
  }
  const body = await response.json();
  const date = response.headers.get("Date");
  const token = { token: body.access_token };
  if (date !== null && !Number.isNaN(Date.parse(date))) token.serverTime = Date.parse(date);
  return token;
}
export {
  DEFAULT_BACKOFF,
  DpopKey,
  WsgateClient,
  backoffDelay,
  defaultRetryPolicy,
  fetchToken,
  refreshDelay,
  singleFlight,
  targetUrl
};
