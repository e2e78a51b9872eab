// DPoP (RFC 9449) in the browser: an ECDSA P-256 key pair made by
// WebCrypto as non-extractable (no script, the page's own included, can
// read the private key out), kept in IndexedDB so a reload keeps the
// same key, and the proofs it signs.

const DATABASE = "wsgate";
const STORE = "keys";

function base64url(bytes: ArrayBuffer | Uint8Array): string {
  const array = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let text = "";
  for (const byte of array) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64urlText(text: string): string {
  return base64url(new TextEncoder().encode(text));
}

/** `ws:`/`wss:` as `http:`/`https:`, without query or fragment: the `htu`
 * a wsgate server compares (its `TargetUrl`). */
export function targetUrl(url: string): string {
  const parsed = new URL(url);
  const scheme = parsed.protocol === "wss:" ? "https:" : parsed.protocol === "ws:" ? "http:" : parsed.protocol;
  const host = parsed.host; // the default port is already dropped by URL
  return `${scheme}//${host}${parsed.pathname}`;
}

/** A DPoP key: the pair, and its public JWK. */
export class DpopKey {
  private constructor(
    private readonly pair: CryptoKeyPair,
    private readonly jwk: JsonWebKey,
  ) {}

  /** A new key pair, in memory only (nothing persisted). */
  static async generate(): Promise<DpopKey> {
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    return DpopKey.of(pair);
  }

  /** The key pair kept in IndexedDB under `name`, made (non-extractable)
   * the first time. A key pair is stored as the CryptoKey objects
   * themselves: IndexedDB keeps them without ever exposing the private
   * bytes. */
  static async load(name = "dpop"): Promise<DpopKey> {
    const database = await open();
    const stored = await request<CryptoKeyPair | undefined>(
      database.transaction(STORE, "readonly").objectStore(STORE).get(name),
    );
    if (stored) return DpopKey.of(stored);
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    await request(database.transaction(STORE, "readwrite").objectStore(STORE).put(pair, name));
    return DpopKey.of(pair);
  }

  private static async of(pair: CryptoKeyPair): Promise<DpopKey> {
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    return new DpopKey(pair, { kty, crv, x, y } as JsonWebKey);
  }

  /** Whether the private key can be read out (never, for keys made here). */
  get extractable(): boolean {
    return this.pair.privateKey.extractable;
  }

  /** The RFC 7638 thumbprint of the public key: the `jkt` a bound token
   * names. */
  async thumbprint(): Promise<string> {
    const { crv, kty, x, y } = this.jwk;
    const canonical = JSON.stringify({ crv, kty, x, y });
    return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical)));
  }

  /** A proof for `method` `url` (at `nowMs` by the server's clock), for
   * `accessToken` (its hash as `ath`) and the server's `nonce`, if any. */
  async proof(options: { method: string; url: string; nowMs: number; accessToken?: string; nonce?: string }): Promise<string> {
    const header = { typ: "dpop+jwt", alg: "ES256", jwk: this.jwk };
    const claims: Record<string, unknown> = {
      htm: options.method,
      htu: targetUrl(options.url),
      iat: Math.floor(options.nowMs / 1000),
      jti: base64url(crypto.getRandomValues(new Uint8Array(16))),
    };
    if (options.accessToken !== undefined) {
      claims.ath = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(options.accessToken)));
    }
    if (options.nonce !== undefined) claims.nonce = options.nonce;
    const signed = `${base64urlText(JSON.stringify(header))}.${base64urlText(JSON.stringify(claims))}`;
    // WebCrypto's ECDSA signature is r || s: exactly JWS's ES256 form.
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      this.pair.privateKey,
      new TextEncoder().encode(signed),
    );
    return `${signed}.${base64url(signature)}`;
  }
}

function open(): Promise<IDBDatabase> {
  const opening = indexedDB.open(DATABASE, 1);
  opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
  return request(opening);
}

function request<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
