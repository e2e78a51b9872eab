// wsgate's browser client: one ES module, no dependencies.
export { WsgateClient } from "./client.js";
export type { ClientOptions, Events, PageLife, SocketFactory, SocketLike, State, Token, TokenReason } from "./client.js";
export { DEFAULT_BACKOFF, backoffDelay } from "./backoff.js";
export type { Backoff } from "./backoff.js";
export { defaultRetryPolicy } from "./policy.js";
export type { Retry, RetryPolicy } from "./policy.js";
export { refreshDelay } from "./clock.js";
export type { Clock } from "./clock.js";
export { DpopKey, targetUrl } from "./dpop.js";
export { singleFlight } from "./single-flight.js";
export { fetchToken } from "./token-route.js";
