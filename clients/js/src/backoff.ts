// Reconnect delays: exponential back-off with full jitter (the AWS
// architecture blog's "full jitter": a delay drawn uniformly between zero
// and the exponential bound), so a thousand tabs a restart cut off do not
// come back in step.

/** How delays grow. */
export interface Backoff {
  /** The bound of the first retry, in milliseconds. */
  baseMs: number;
  /** The largest bound, in milliseconds. */
  capMs: number;
}

/** 500 ms doubling up to 30 s: DESIGN.md's "up to 30 s". */
export const DEFAULT_BACKOFF: Backoff = { baseMs: 500, capMs: 30_000 };

/**
 * The delay before retry number `attempt` (0 for the first): uniform in
 * [0, min(cap, base * 2^attempt)). `random` returns a number in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  backoff: Backoff = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  const bound = Math.min(backoff.capMs, backoff.baseMs * 2 ** exponent);
  return Math.floor(random() * bound);
}
