// A real OpenID Connect provider for the tests: panva/oidc-provider (OpenID Certified), with
// its development login page (any login name, any password) and no consent screen for the
// registered clients.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: { "port": 0, "issuer": "http://127.0.0.1:PORT", "clients": [ {client_id, client_secret,
// redirect_uris} ], "accounts": "/path/to/accounts.json", "jwks": {"keys": [...]} (optional) }.
// The accounts file maps a login name to the claims of that account ({"email": ...,
// "email_verified": true, "name": ..., "groups": [...]}); it is read at every sign-in, so a
// test changes an account by rewriting it. Prints "listening <port>" once it serves.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function account(login) {
  const accounts = JSON.parse(readFileSync(config.accounts, 'utf8'));
  return Object.hasOwn(accounts, login) ? accounts[login] : undefined;
}

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  ...(config.jwks ? { jwks: config.jwks } : {}),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified', 'xms_edov'],
    // groups comes with the profile, as a provider configured to add its groups claim to
    // the ID token sends it (docs/sso.md).
    profile: ['name', 'groups'],
  },
  // The claims of the requested scopes go into the ID token, as Entra ID, Google, Okta and
  // Keycloak put them there.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, sub) {
    const claims = account(sub);
    if (!claims) return undefined;
    return { accountId: sub, async claims() { return { sub, ...account(sub) }; } };
  },
  // No consent screen: a registered client is granted what it asks for.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
