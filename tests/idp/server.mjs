// A real OpenID provider for wsgate's tests: `oidc-provider` with client
// credentials, introspection, revocation and resource indicators, so the
// tests get JWT (ES256, RS256) and opaque access tokens from the software
// real deployments use.
//
//   node server.mjs --port PORT [--issuer URL]
//
// Port 0 lets the system pick a free port, so two providers started at
// once never meet on one. Prints `listening PORT` once it accepts
// connections; a port already taken ends it with an error. Everything under
// `/control/` is for the tests only: it changes what the provider serves
// (key rotation, a JWKS that hangs or carries an `oct` key, a discovery
// document with a wrong issuer, a malformed introspection answer) and
// counts the requests wsgate makes.
import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const port = Number(args.port ?? 0);
// Known once the server listens (the port may be the system's choice).
let issuer = null;

// The resource servers: the resource indicator picks the token format.
const AUDIENCE = 'wsgate-chat';
const RESOURCES = {
  'urn:wsgate:es256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  'urn:wsgate:rs256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } },
  'urn:wsgate:opaque': { accessTokenFormat: 'opaque' },
};

// Clients: the client id is the token's subject (client credentials).
const CLIENTS = [
  { client_id: 'chat-user', client_secret: 'chat-user-secret-0123456789', scope: 'chat' },
  { client_id: 'chat-admin', client_secret: 'chat-admin-secret-0123456789', scope: 'chat chat:admin' },
  { client_id: 'no-scope', client_secret: 'no-scope-secret-0123456789' },
  // A device whose tokens are bound to its client certificate (RFC 8705).
  {
    client_id: 'chat-device', client_secret: 'chat-device-secret-0123456789', scope: 'chat',
    tls_client_certificate_bound_access_tokens: true,
  },
  // wsgate's own credentials for introspection.
  { client_id: 'wsgate', client_secret: 'wsgate-introspection-secret-0123456789' },
].map((client) => ({
  ...client,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
}));

// Generated as PEM, then read into a fresh key object for the JWK export:
// Node.js 20 can deadlock when the garbage collector frees a key
// generation job while the key it made is being exported (the main
// thread waits on a lock it holds, asleep before it ever listens).
function generatedKey(type, options) {
  const pem = crypto.generateKeyPairSync(type, {
    ...options,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  }).privateKey;
  return crypto.createPrivateKey(pem);
}

function generateKeys() {
  const stamp = crypto.randomBytes(6).toString('hex');
  const ec = generatedKey('ec', { namedCurve: 'P-256' });
  const rsa = generatedKey('rsa', { modulusLength: 2048 });
  return [
    { ...ec.export({ format: 'jwk' }), kid: `ec-${stamp}`, alg: 'ES256', use: 'sig' },
    { ...rsa.export({ format: 'jwk' }), kid: `rsa-${stamp}`, alg: 'RS256', use: 'sig' },
  ];
}

function publicPart(jwk) {
  const { d, p, q, dp, dq, qi, ...rest } = jwk;
  return rest;
}

const state = {
  keys: generateKeys(),
  retired: [], // keys still published after a rotation
  extra: [], // public keys a test publishes (an attacker's provider)
  jwksMode: 'normal', // normal | hang | oct | broken | error | huge | redirect
  jwksCacheControl: 'max-age=600',
  octSecret: null,
  discoveryIssuer: null, // override of the discovery document's `issuer`
  introspectionMode: 'normal', // normal | malformed | hang | error
  counts: { discovery: 0, jwks: 0, introspection: 0, token: 0 },
};

function makeProvider(keys) {
  const provider = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys },
    scopes: ['chat', 'chat:admin'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      // Certificate-bound tokens (RFC 8705). No TLS here: the tests hand
      // the client's certificate over as a TLS-terminating proxy would,
      // URL-encoded PEM in `X-SSL-Client-Cert`.
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate(ctx) {
          const forwarded = ctx.get('x-ssl-client-cert');
          return forwarded ? decodeURIComponent(forwarded) : undefined;
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:wsgate:es256',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const server = RESOURCES[resource];
          if (!server) throw new Error(`unknown resource ${resource}`);
          return { scope: 'chat chat:admin', audience: AUDIENCE, accessTokenTTL: 300, ...server };
        },
      },
    },
    // The tests run over plain HTTP on loopback.
    ttl: { ClientCredentials: 300 },
  });
  provider.proxy = false;
  return provider;
}

let provider = null;

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

function jwksBody() {
  const keys = [...state.keys, ...state.retired].map(publicPart).concat(state.extra);
  if (state.jwksMode === 'oct') {
    keys.unshift({ kty: 'oct', kid: 'oct-1', alg: 'HS256', use: 'sig', k: Buffer.from(state.octSecret).toString('base64url') });
  }
  if (state.jwksMode === 'broken') {
    // One key that cannot be parsed, one with an unknown kty: skipped, the
    // rest still serve.
    keys.unshift({ kty: 'EC', crv: 'P-256', kid: 'broken-1', alg: 'ES256', x: 'AAAA', y: '!!' });
    keys.unshift({ kty: 'XYZ', kid: 'alien-1' });
  }
  return { keys };
}

function control(req, res, url) {
  const q = url.searchParams;
  if (url.pathname === '/control/publish') {
    // Publishes the public JWK in the request body next to the provider's own.
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      state.extra.push(JSON.parse(body));
      json(res, 200, {});
    });
    return undefined;
  }
  switch (url.pathname) {
    case '/control/stats':
      return json(res, 200, state.counts);
    case '/control/reset':
      state.counts = { discovery: 0, jwks: 0, introspection: 0, token: 0 };
      return json(res, 200, {});
    case '/control/rotate': {
      // A new key set; `keep_old=1` keeps the old keys published (the
      // overlap a careful provider leaves), otherwise they leave at once.
      state.retired = q.get('keep_old') === '1' ? state.keys : [];
      state.keys = generateKeys();
      provider = makeProvider(state.keys);
      return json(res, 200, { kids: state.keys.map((key) => key.kid) });
    }
    case '/control/jwks':
      state.jwksMode = q.get('mode') ?? 'normal';
      if (q.has('secret')) state.octSecret = q.get('secret');
      if (q.has('cache_control')) state.jwksCacheControl = q.get('cache_control');
      return json(res, 200, {});
    case '/control/discovery':
      state.discoveryIssuer = q.get('issuer');
      return json(res, 200, {});
    case '/control/introspection':
      state.introspectionMode = q.get('mode') ?? 'normal';
      return json(res, 200, {});
    case '/control/kids':
      return json(res, 200, { kids: state.keys.map((key) => key.kid) });
    default:
      return json(res, 404, { error: 'no such control' });
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/control/')) return control(req, res, url);

  if (url.pathname === '/.well-known/openid-configuration') {
    state.counts.discovery += 1;
    if (state.discoveryIssuer) {
      // The provider's own document, with its `issuer` replaced.
      const original = res.end.bind(res);
      res.end = (chunk, ...rest) => {
        const body = JSON.parse(chunk.toString());
        body.issuer = state.discoveryIssuer;
        const text = JSON.stringify(body);
        res.setHeader('content-length', Buffer.byteLength(text));
        return original(text, ...rest);
      };
    }
  }
  if (url.pathname === '/jwks') {
    state.counts.jwks += 1;
    switch (state.jwksMode) {
      case 'hang':
        return; // never answers, keeps the connection open
      case 'error':
        return json(res, 500, { error: 'server_error' });
      case 'huge': {
        // A valid key set padded past wsgate's 256 KiB cap.
        const body = jwksBody();
        body.padding = 'x'.repeat(300 * 1024);
        return json(res, 200, body);
      }
      case 'redirect':
        // To a key set of the attacker's choosing: never followed.
        res.writeHead(302, { location: `${issuer}/control/kids` });
        return res.end();
      default:
        return json(res, 200, jwksBody(), { 'cache-control': state.jwksCacheControl });
    }
  }
  if (url.pathname === '/token/introspection') {
    state.counts.introspection += 1;
    switch (state.introspectionMode) {
      case 'hang':
        return;
      case 'error':
        return json(res, 500, { error: 'server_error' });
      case 'malformed':
        return json(res, 200, '{"active": "yes", "sub": ');
      default:
        break;
    }
  }
  if (url.pathname === '/token') state.counts.token += 1;
  return provider.callback()(req, res);
});

server.on('error', (error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  const bound = server.address().port;
  issuer = args.issuer ?? `http://127.0.0.1:${bound}`;
  provider = makeProvider(state.keys);
  process.stdout.write(`listening ${bound}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
