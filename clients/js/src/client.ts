// The socket's whole life on the client's side: connect with a token,
// refresh it in-band before it expires, reconnect by close code, follow
// the page's life. Tokens stay in memory: never in a URL, a log or
// localStorage.

import { Backoff, DEFAULT_BACKOFF, backoffDelay } from "./backoff.js";
import { Clock, refreshDelay, systemClock } from "./clock.js";
import { DpopKey } from "./dpop.js";
import { Retry, RetryPolicy, defaultRetryPolicy } from "./policy.js";
import { singleFlight } from "./single-flight.js";

/** An access token, as the application's token route answered. */
export interface Token {
  /** The access token. */
  token: string;
  /** The server's clock when it answered (Unix ms), e.g. from the `Date`
   * header: refreshes are timed by the server's clock, not the page's. */
  serverTime?: number;
}

/** Why a token is asked for. */
export type TokenReason = "connect" | "refresh" | "expired";

/** The client's states. */
export type State = "idle" | "connecting" | "open" | "waiting" | "suspended" | "closed";

/** The events a client emits, and what each carries. */
export interface Events {
  /** The state changed. */
  state: { state: State };
  /** A message arrived (the welcome and `auth.refreshed` included). */
  message: { data: string; json: unknown };
  /** The socket closed: its code and phrase, and what happens next. */
  closed: { code: number; reason: string; retry: Retry; delayMs?: number };
  /** Getting a token, a ticket or a proof failed. */
  error: { error: unknown };
}

/** What the client needs of a WebSocket (the browser's, or a test's). */
export interface SocketLike {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type SocketFactory = (url: string, protocols: string[]) => SocketLike;

/** The page's life, as the client follows it (the browser's `window`, or a
 * test's stand-in). */
export interface PageLife {
  addEventListener(type: string, listener: (event: { persisted?: boolean }) => void): void;
  removeEventListener(type: string, listener: (event: { persisted?: boolean }) => void): void;
  readonly online: () => boolean;
  readonly hidden: () => boolean;
}

export interface ClientOptions {
  /** The socket's URL (`wss://host/ws`). */
  url: string;
  /** The application protocols offered (`["chat.v1"]`); the token and
   * proof entries are added, never selected by the server. */
  protocols: string[];
  /** A fresh access token. Concurrent calls share one call. */
  getToken: (reason: TokenReason) => Promise<Token>;
  /** `subprotocol` (the default) or `ticket`, which needs `getTicket`. */
  transport?: "subprotocol" | "ticket";
  /** A single-use ticket bought with `token` (the ticket route). */
  getTicket?: (token: Token) => Promise<string>;
  /** When to reconnect, by close code. */
  retryPolicy?: RetryPolicy;
  /** How reconnect delays grow. */
  backoff?: Backoff;
  /** A DPoP key: every handshake carries a proof of it. */
  dpop?: DpopKey;
  /** The server's DPoP nonce, when it hands them out. */
  dpopNonce?: () => string | undefined;
  /** The in-band refresh message's type; `auth.refresh` by default. */
  refreshType?: string;
  /** How long the server may take to answer an in-band refresh before the
   * socket is taken for dead (a server that stopped answering: closed
   * here, then reconnected with back-off). 10 s by default. */
  answerTimeoutMs?: number;
  clock?: Clock;
  random?: () => number;
  socket?: SocketFactory;
  page?: PageLife | null;
}

type Listener<K extends keyof Events> = (event: Events[K]) => void;

export class WsgateClient {
  private readonly options: ClientOptions;
  private readonly clock: Clock;
  private readonly retryPolicy: RetryPolicy;
  private readonly token: (reason: TokenReason) => Promise<Token>;
  private readonly listeners = new Map<keyof Events, Set<(event: never) => void>>();
  private socket: SocketLike | null = null;
  private timer: unknown = null;
  private refreshTimer: unknown = null;
  private answerTimer: unknown = null;
  private attempt = 0;
  private offsetMs = 0;
  private current: State = "idle";
  private readonly page: PageLife | null;

  constructor(options: ClientOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.retryPolicy = options.retryPolicy ?? defaultRetryPolicy;
    let reason: TokenReason = "connect";
    const shared = singleFlight(() => options.getToken(reason));
    this.token = (why) => {
      reason = why;
      return shared();
    };
    this.page = options.page === undefined ? browserPage() : options.page;
    for (const type of ["online", "pagehide", "pageshow", "visibilitychange"]) {
      this.page?.addEventListener(type, (event) => this.pageChanged(type, event));
    }
  }

  /** The state. */
  get state(): State {
    return this.current;
  }

  /** Listens to `type`; returns a function that stops listening. */
  on<K extends keyof Events>(type: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    const listeners = set;
    listeners.add(listener as (event: never) => void);
    return () => listeners.delete(listener as (event: never) => void);
  }

  /** Opens the socket (and keeps it open, as the close codes allow). */
  connect(): void {
    if (this.current === "connecting" || this.current === "open") return;
    this.attempt = 0;
    void this.open("connect");
  }

  /** Sends `data` on the open socket; false when it is not open. */
  send(data: string | object): boolean {
    if (!this.socket || this.current !== "open") return false;
    this.socket.send(typeof data === "string" ? data : JSON.stringify(data));
    return true;
  }

  /** Closes the socket for good (1000). */
  close(): void {
    this.stopTimers();
    this.setState("closed");
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "closed by the client");
  }

  private emit<K extends keyof Events>(type: K, event: Events[K]): void {
    for (const listener of this.listeners.get(type) ?? []) (listener as Listener<K>)(event);
  }

  private setState(state: State): void {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", { state });
  }

  private stopTimers(): void {
    for (const timer of [this.timer, this.refreshTimer, this.answerTimer]) {
      if (timer !== null) this.clock.clearTimeout(timer);
    }
    this.timer = null;
    this.refreshTimer = null;
    this.answerTimer = null;
  }

  private learnServerTime(token: Token): void {
    if (token.serverTime !== undefined) this.offsetMs = token.serverTime - this.clock.now();
  }

  private async open(reason: TokenReason): Promise<void> {
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
          ...(this.options.transport === "ticket" ? {} : { accessToken: token.token }),
          ...this.nonce(),
        });
        protocols.push(`wsgate.dpop.${proof}`);
      }
    } catch (error) {
      this.emit("error", { error });
      this.scheduleReconnect({ kind: "back-off" }, 1006, "no token");
      return;
    }
    if (this.current !== "connecting") return;
    const factory = this.options.socket ?? ((url, protocols) => new WebSocket(url, protocols) as unknown as SocketLike);
    const socket = factory(url, protocols);
    this.socket = socket;
    // Open once the server accepted the handshake; the back-off resets at
    // the first message, so a server that accepts and closes at once is
    // not hammered.
    socket.onopen = () => {
      if (socket === this.socket) this.setState("open");
    };
    socket.onmessage = (event) => this.received(socket, String(event.data));
    socket.onclose = (event) => this.closed(socket, event.code, event.reason);
    socket.onerror = () => {};
  }

  private nonce(): { nonce?: string } {
    const nonce = this.options.dpopNonce?.();
    return nonce === undefined ? {} : { nonce };
  }

  private received(socket: SocketLike, data: string): void {
    if (socket !== this.socket) return;
    // The server answers: whatever it was waiting for, it is alive.
    if (this.answerTimer !== null) {
      this.clock.clearTimeout(this.answerTimer);
      this.answerTimer = null;
    }
    let json: unknown = undefined;
    try {
      json = JSON.parse(data);
    } catch {
      // Not JSON: the application's own framing.
    }
    this.attempt = 0;
    this.setState("open");
    const message = json as { type?: unknown; expires_at?: unknown } | undefined;
    if (message && typeof message === "object") {
      if ((message.type === "welcome" || message.type === "auth.refreshed") && typeof message.expires_at === "number") {
        this.scheduleRefresh(message.expires_at);
      }
    }
    this.emit("message", { data, json });
  }

  /** Refreshes in-band before the server's `expires_at`, by the server's
   * clock. */
  private scheduleRefresh(expiresAt: number): void {
    if (this.refreshTimer !== null) this.clock.clearTimeout(this.refreshTimer);
    const delay = refreshDelay(expiresAt, this.clock.now(), this.offsetMs);
    this.refreshTimer = this.clock.setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh();
    }, delay);
  }

  private async refresh(): Promise<void> {
    const socket = this.socket;
    try {
      const token = await this.token("refresh");
      this.learnServerTime(token);
      if (socket === null || socket !== this.socket || this.current !== "open") return;
      socket.send(JSON.stringify({ type: this.options.refreshType ?? "auth.refresh", token: token.token }));
      // No answer in time: the server (or the path to it) is gone without
      // a close the browser would see for minutes. Take the socket for
      // dead and come back.
      this.answerTimer = this.clock.setTimeout(() => {
        this.answerTimer = null;
        if (socket !== this.socket) return;
        this.socket = null;
        this.stopTimers();
        socket.close(4000, "no answer");
        this.scheduleReconnect({ kind: "back-off" }, 1006, "no answer from the server");
      }, this.options.answerTimeoutMs ?? 10_000);
    } catch (error) {
      this.emit("error", { error });
      // Try again shortly; the socket closes 4401 at expiry if it never works.
      this.refreshTimer = this.clock.setTimeout(() => void this.refresh(), 5_000);
    }
  }

  private closed(socket: SocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.socket = null;
    this.stopTimers();
    if (this.current === "closed" || this.current === "suspended") return;
    const retry = this.retryPolicy(code, reason);
    this.scheduleReconnect(retry, code, reason);
  }

  private scheduleReconnect(retry: Retry, code: number, reason: string): void {
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
      // Offline, or a hidden tab: wait for `online` or `visibilitychange`.
      if (this.page && (!this.page.online() || this.page.hidden())) return;
      void this.open("connect");
    }, delayMs);
  }

  /** The page's life: back online or visible again → reconnect now; going
   * into the back/forward cache → close (it cannot keep a socket), and
   * reconnect when it comes back. */
  private pageChanged(type: string, event: { persisted?: boolean }): void {
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
          socket?.close(1000, "page hidden");
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
}

/** The browser's window as {@link PageLife}; `null` outside a browser. */
function browserPage(): PageLife | null {
  if (typeof window === "undefined" || typeof document === "undefined") return null;
  return {
    addEventListener: (type, listener) => {
      const target = type === "visibilitychange" ? document : window;
      target.addEventListener(type, listener as unknown as EventListener);
    },
    removeEventListener: (type, listener) => {
      const target = type === "visibilitychange" ? document : window;
      target.removeEventListener(type, listener as unknown as EventListener);
    },
    online: () => navigator.onLine,
    hidden: () => document.visibilityState === "hidden",
  };
}
