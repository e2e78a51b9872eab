// Time as the client needs it, replaceable in tests.

export interface Clock {
  /** Milliseconds since the Unix epoch, by the page's clock. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * When to refresh a token the server says expires at `expiresAt` (Unix
 * seconds, the server's clock), in milliseconds from now: a margin before
 * the end (a tenth of what is left, at least 2 s and at most 60 s).
 * `offsetMs` is the server's clock minus the page's, so a page whose
 * clock is wrong still refreshes in time; 0 at once when already late.
 */
export function refreshDelay(expiresAt: number, nowMs: number, offsetMs: number): number {
  const left = expiresAt * 1000 - (nowMs + offsetMs);
  const margin = Math.min(60_000, Math.max(2_000, left / 10));
  return Math.max(0, Math.floor(left - margin));
}
