// The certified peer of bench/run.py's "peer" stage: oidc-provider (OpenID Certified), issuing
// an EdDSA-signed JWT access token for the client_credentials grant at the same path as
// keyrelease (POST /ids/auth/login, client_secret_basic), its one client held in memory.
//
//   node server.mjs   with PEER_PORT, PEER_CLIENT_ID, PEER_CLIENT_SECRET, PEER_JWK (the
//                     Ed25519 private key as a JWK, JSON), PEER_AUDIENCE
//
// Ready once GET /.well-known/openid-configuration answers 200. Nothing is logged per request.
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT || 8002);
const audience = process.env.PEER_AUDIENCE || 'keyrelease-bench';
const resource = 'urn:keyrelease:bench'; // the resource indicator (an absolute URI); tokens carry aud = audience
const issuer = `http://127.0.0.1:${port}`;
const jwk = JSON.parse(process.env.PEER_JWK);

const resourceServer = {
  scope: 'api',
  audience,
  accessTokenTTL: 3600,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'EdDSA' } },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.PEER_CLIENT_ID,
    client_secret: process.env.PEER_CLIENT_SECRET,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'EdDSA', // the keystore holds one Ed25519 key only
  }],
  jwks: { keys: [{ ...jwk, alg: 'EdDSA', use: 'sig' }] },
  scopes: ['api'],
  routes: { token: '/ids/auth/login' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      getResourceServerInfo: () => resourceServer,
      useGrantedResource: () => true,
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

http.createServer(provider.callback()).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider peer on ${issuer}`);
});
