// The usual `getToken`: POST to the application's token route (the
// refresh cookie goes along on its own), with a DPoP proof for it when
// the session is bound to a key; the server's clock read off `Date`.

import type { DpopKey } from "./dpop.js";
import type { Token } from "./client.js";

export interface TokenRoute {
  /** The route's URL (`/token`). */
  url: string;
  /** The session's DPoP key, when it is bound to one. */
  dpop?: DpopKey;
  /** The server's DPoP nonce holder: read for each proof, updated from
   * each `DPoP-Nonce` answered. */
  nonce?: { value?: string };
}

/** `POST route.url` → the access token. Throws with the HTTP status on a
 * refusal (401 `invalid_grant`: the session is over; log in again). */
export async function fetchToken(route: TokenRoute): Promise<Token> {
  const headers: Record<string, string> = {};
  if (route.dpop) {
    const absolute = new URL(route.url, location.href).toString();
    headers.DPoP = await route.dpop.proof({
      method: "POST",
      url: absolute,
      nowMs: Date.now(),
      ...(route.nonce?.value === undefined ? {} : { nonce: route.nonce.value }),
    });
  }
  const response = await fetch(route.url, { method: "POST", headers, credentials: "same-origin" });
  const nonce = response.headers.get("DPoP-Nonce");
  if (nonce !== null && route.nonce) route.nonce.value = nonce;
  if (!response.ok) {
    throw Object.assign(new Error(`token route answered ${response.status}`), { status: response.status });
  }
  const body = (await response.json()) as { access_token: string };
  const date = response.headers.get("Date");
  const token: Token = { token: body.access_token };
  if (date !== null && !Number.isNaN(Date.parse(date))) token.serverTime = Date.parse(date);
  return token;
}
