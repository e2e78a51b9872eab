// What to do when a socket closes, by its close code (DESIGN.md, "Close
// codes"): the one table the client reconnects by.

/** What the client does after a close. */
export type Retry =
  /** Get a fresh token, then reconnect at once (4401). */
  | { kind: "fresh-token" }
  /** Wait (back-off with jitter), then reconnect. */
  | { kind: "back-off" }
  /** Stay closed: reconnecting would be refused again, or wrong. */
  | { kind: "stop" };

/** A retry policy: the default is {@link defaultRetryPolicy}. */
export type RetryPolicy = (code: number, reason: string) => Retry;

/**
 * wsgate's close codes: 4401 (token expired or invalid, authentication
 * deadline missed) → a fresh token, then at once; 4403 (revoked, banned,
 * forbidden) and 1009 (message too big: fix the client) → never; 1000
 * (closed on purpose) → never; 4429 (too many messages) → back off;
 * everything else (1006 network loss, 1011 a backend failed, 1012/1013
 * restarts) → back off.
 */
export function defaultRetryPolicy(code: number, _reason: string): Retry {
  switch (code) {
    case 4401:
      return { kind: "fresh-token" };
    case 4403:
    case 1009:
    case 1000:
      return { kind: "stop" };
    default:
      return { kind: "back-off" };
  }
}
