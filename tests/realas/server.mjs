// Local, real OAuth 2.0 authorization server for integration tests, built on
// panva's OpenID Certified `oidc-provider` (pinned in package.json).
//
//   node server.mjs [--port 18143] [--http-port 18180] [--host 127.0.0.1]
//                   [--issuer https://127.0.0.1:18143] [--pki ./pki]
//                   [--resources resources.json] [--ttl 600] [--watch-stdin]
//
// Copy of shared/examples/real-as/server.mjs for mod_oauth2's integration tests
// (tests/common/remote.rs starts it with a PKI it generates). Additions:
// * client `pkjwt-client` (private_key_jwt, public key from pki/rs-pkjwt.key)
//   and `secretjwt-client` (client_secret_jwt), for introspection endpoint auth;
// * --watch-stdin: exit when standard input reaches EOF, i.e. when the process
//   that started us (and holds the pipe's write end) exits, however it exits.
//
// * HTTPS listener (always): TLS terminated by node itself, client certificate
//   requested but optional (requestCert: true, rejectUnauthorized: false), so
//   the same token endpoint serves secret, self-signed-cert and CA-cert clients.
// * Optional plain HTTP listener (--http-port): same provider, no mTLS possible.
//   Handy for JWKS / introspection from a resource server without TLS setup.
// * Grants: client_credentials only (no interactive login is configured).
// * Access token format is chosen per resource indicator (RFC 8707 `resource`
//   parameter) by getResourceServerInfo below: JWT (RFC 9068, typ at+jwt) signed
//   RS256 / PS256 / ES256 / EdDSA, or opaque (introspectable).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import Provider, { errors } from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.REALAS_PORT || '18143' },
    'http-port': { type: 'string', default: process.env.REALAS_HTTP_PORT || '' },
    host: { type: 'string', default: process.env.REALAS_HOST || '127.0.0.1' },
    issuer: { type: 'string', default: process.env.REALAS_ISSUER || '' },
    pki: { type: 'string', default: process.env.REALAS_PKI || path.join(here, 'pki') },
    resources: { type: 'string', default: process.env.REALAS_RESOURCES || '' },
    ttl: { type: 'string', default: process.env.REALAS_TTL || '600' },
    'dpop-nonce': { type: 'boolean', default: process.env.REALAS_DPOP_NONCE === '1' },
    'watch-stdin': { type: 'boolean', default: false },
  },
});

const port = Number(args.port);
const host = args.host;
const issuer = args.issuer || `https://${host}:${port}`;
const ttl = Number(args.ttl);
const pki = (f) => fs.readFileSync(path.join(args.pki, f));

// ---------------------------------------------------------------- signing keys
// Stable keys from pki/ (make-pki.sh) so a resource server can pin the JWKS.
function jwkFromPem(file, extra = {}) {
  const jwk = crypto.createPrivateKey(pki(file)).export({ format: 'jwk' });
  return { ...jwk, use: 'sig', ...extra };
}
const jwks = {
  keys: [
    jwkFromPem('as-rsa.key', { kid: 'rsa-1' }), // RS256 + PS256
    jwkFromPem('as-ec.key', { kid: 'ec-p256-1' }), // ES256
    jwkFromPem('as-ed25519.key', { kid: 'ed25519-1' }), // EdDSA
  ],
};

// ------------------------------------------------------------ resource servers
// resource indicator -> { format: 'jwt'|'opaque', alg, audience, scope, ttl }
const RS = 'https://rs.example.test';
let resources = {
  [`${RS}/rs256`]: { format: 'jwt', alg: 'RS256' },
  [`${RS}/ps256`]: { format: 'jwt', alg: 'PS256' },
  [`${RS}/es256`]: { format: 'jwt', alg: 'ES256' },
  [`${RS}/eddsa`]: { format: 'jwt', alg: 'EdDSA' },
  [`${RS}/opaque`]: { format: 'opaque' },
  [`${RS}/short`]: { format: 'jwt', alg: 'RS256', ttl: 2 }, // expires after 2 s
};
if (args.resources) {
  resources = { ...resources, ...JSON.parse(fs.readFileSync(args.resources, 'utf8')) };
}
const DEFAULT_RESOURCE = process.env.REALAS_DEFAULT_RESOURCE || `${RS}/rs256`;
const DEFAULT_SCOPE = 'read write admin';

// ----------------------------------------------------------------- mTLS helpers
// node terminates TLS itself, so the peer certificate comes from the TLS socket.
// Over the plain-HTTP listener there is no TLS socket and hence no certificate.
function peerCert(ctx) {
  const sock = ctx.req.socket;
  if (typeof sock.getPeerX509Certificate !== 'function') return undefined;
  return sock.getPeerX509Certificate() || undefined;
}
function rfc4514(subject) { // node gives "O=realas\nCN=client-pki" (cert order)
  return subject.split('\n').reverse().join(',');
}

const selfCert = new crypto.X509Certificate(pki('client-self.crt'));
const pkiCert = new crypto.X509Certificate(pki('client-pki.crt'));
const b64der = (c) => c.raw.toString('base64');
// RSA key of the private_key_jwt client (optional, so an older pki/ still works)
const pkjwtFile = path.join(args.pki, 'rs-pkjwt.key');
const pkjwtJwk = fs.existsSync(pkjwtFile)
  ? { ...crypto.createPublicKey(fs.readFileSync(pkjwtFile)).export({ format: 'jwk' }), kid: 'pkjwt-1', use: 'sig' }
  : undefined;

// ---------------------------------------------------------------------- clients
const cc = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] };
const clients = [
  { // shared secret, plain bearer tokens (DPoP optional: send a DPoP header)
    ...cc, client_id: 'basic-client', client_secret: 'basic-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  { // shared secret in the form body
    ...cc, client_id: 'post-client', client_secret: 'post-secret',
    token_endpoint_auth_method: 'client_secret_post',
  },
  { // RFC 8705 section 2.2 self-signed certificate auth + certificate-bound tokens
    ...cc, client_id: 'self-signed-mtls-client',
    token_endpoint_auth_method: 'self_signed_tls_client_auth',
    tls_client_certificate_bound_access_tokens: true,
    jwks: { keys: [{ ...selfCert.publicKey.export({ format: 'jwk' }), x5c: [b64der(selfCert)] }] },
  },
  { // RFC 8705 section 2.1 PKI (CA-issued cert, subject DN match) + certificate-bound tokens
    ...cc, client_id: 'pki-mtls-client',
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: rfc4514(pkiCert.subject), // "CN=client-pki,O=realas"
    tls_client_certificate_bound_access_tokens: true,
  },
  { // secret auth, but every token MUST be DPoP-bound (RFC 9449 dpop_bound_access_tokens)
    ...cc, client_id: 'dpop-client', client_secret: 'dpop-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    dpop_bound_access_tokens: true,
  },
  { // the resource server's own credentials, for RFC 7662 introspection / revocation
    ...cc, client_id: 'rs-client', client_secret: 'rs-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  { // client assertion signed with a shared secret (HS256); the secret is long enough for HS512
    ...cc, client_id: 'secretjwt-client',
    client_secret: 'secretjwt-secret-0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_jwt',
  },
  ...(pkjwtJwk ? [{ // client assertion signed with the RSA key in pki/rs-pkjwt.key
    ...cc, client_id: 'pkjwt-client',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: { keys: [pkjwtJwk] },
  }] : []),
];

// ----------------------------------------------------------------- configuration
const configuration = {
  clients,
  jwks,
  // the mTLS methods are NOT in the default list: they must be named here
  clientAuthMethods: [
    'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt',
    'tls_client_auth', 'self_signed_tls_client_auth', 'none',
  ],
  cookies: { keys: ['realas-cookie-key-not-secret'] },
  // only used for RS256 as the fallback JWT AT alg (id_token_signed_response_alg)
  clientDefaults: { id_token_signed_response_alg: 'RS256', grant_types: ['client_credentials'], response_types: [] },
  enabledJWA: {
    dPoPSigningAlgValues: ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519'],
  },
  // A plain number here would silently override getResourceServerInfo().accessTokenTTL:
  // the TTL functions must consult token.resourceServer themselves.
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || ttl,
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || ttl,
  },
  extraTokenClaims: async () => (process.env.REALAS_EXTRA_CLAIMS
    ? JSON.parse(process.env.REALAS_EXTRA_CLAIMS) : undefined),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // any authenticated confidential client may introspect any token
      allowedPolicy: async (ctx, client) => client.clientAuthMethod !== 'none',
    },
    revocation: { enabled: true, allowedPolicy: async () => true },
    dPoP: {
      enabled: true,
      ...(args['dpop-nonce'] ? { nonceSecret: crypto.randomBytes(32), requireNonce: () => true } : {}),
    },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      selfSignedTlsClientAuth: true,
      tlsClientAuth: true,
      getCertificate(ctx) {
        return peerCert(ctx)?.toString(); // PEM, or undefined when none was sent
      },
      certificateAuthorized(ctx) {
        return ctx.req.socket.authorized === true; // chained to pki/ca.crt
      },
      certificateSubjectMatches(ctx, property, expected) {
        const cert = peerCert(ctx);
        if (!cert) return false;
        switch (property) {
          case 'tls_client_auth_subject_dn':
            return rfc4514(cert.subject) === expected;
          case 'tls_client_auth_san_dns':
            return (cert.subjectAltName || '').split(', ').includes(`DNS:${expected}`);
          default:
            return false;
        }
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf || DEFAULT_RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        const rs = resources[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
        return {
          scope: rs.scope || DEFAULT_SCOPE,
          audience: rs.audience || resourceIndicator,
          accessTokenTTL: rs.ttl || ttl,
          accessTokenFormat: rs.format, // 'jwt' | 'opaque'
          ...(rs.format === 'jwt' ? { jwt: { sign: { alg: rs.alg || 'RS256' } } } : {}),
        };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);
// Error responses are deliberately vague (e.g. invalid_grant "grant request is
// invalid"); the real reason is in err.error_detail, logged here to stderr.
provider.on('server_error', (ctx, err) => console.error('server_error', err));
for (const ev of ['grant.error', 'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error']) {
  provider.on(ev, (ctx, err) => console.error(
    `${new Date().toISOString()} ${ev}: ${err.error || err.message}: ${err.error_description || ''}`
    + `${err.error_detail ? ` (detail: ${err.error_detail})` : ''}`,
  ));
}

// ---------------------------------------------------------------------- listeners
const callback = provider.callback();
const tlsServer = https.createServer({
  key: pki('server.key'),
  cert: pki('server.crt'),
  ca: pki('ca.crt'), // trust anchor for tls_client_auth (PKI) client certs
  requestCert: true, // ask for a client certificate ...
  rejectUnauthorized: false, // ... but accept none / self-signed ones (self_signed_tls_client_auth)
}, callback);

const servers = [tlsServer];
await new Promise((resolve, reject) => {
  tlsServer.once('error', reject);
  tlsServer.listen(port, host, resolve);
});
console.log(`realas: oidc-provider ${JSON.parse(fs.readFileSync(path.join(here, 'node_modules/oidc-provider/package.json'))).version} issuer ${issuer}`);
console.log(`realas: https listening on ${host}:${port}`);

if (args['http-port']) {
  const plain = http.createServer(callback);
  await new Promise((resolve, reject) => {
    plain.once('error', reject);
    plain.listen(Number(args['http-port']), host, resolve);
  });
  servers.push(plain);
  console.log(`realas: http listening on ${host}:${args['http-port']}`);
}

const shutdown = () => {
  for (const s of servers) { s.close(); s.closeAllConnections?.(); }
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (args['watch-stdin']) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
