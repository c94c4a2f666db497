// A real third-party OpenID provider for cognito-gateway's test suite.
//
// Runs npm's `oidc-provider` (pinned in package.json) on 127.0.0.1 with clients, users and
// token lifetimes taken from one JSON document: the first command-line argument, or else the
// OIDC_PROVIDER_CONFIG environment variable. Shape (every key optional):
//
//   {
//     "port": 49152,                       // or env OIDC_PROVIDER_PORT; 0 picks a free port
//     "host": "127.0.0.1",                 // or env OIDC_PROVIDER_HOST
//     "clients": [{
//       "client_id": "app",
//       "client_secret": "s3cret",         // null/absent: public client (auth method "none")
//       "token_endpoint_auth_method": "client_secret_basic",  // default for confidential
//       "redirect_uris": ["http://127.0.0.1:8080/oauth2/idpresponse"],
//       "post_logout_redirect_uris": ["http://127.0.0.1:8080/"]
//     }],
//     "users": [{"username": "alice", "password": "pw", "sub": "sub-alice",
//                "email": "alice@example.com", "groups": ["admins"]}],
//     "access_token_ttl": 3600, "id_token_ttl": 3600, "refresh_token_ttl": 86400,
//     "consent": "auto"                    // or "form": show a consent page to submit
//   }
//
// Behaviour:
// * Prints exactly one JSON line `{"ready": true, "issuer": "http://127.0.0.1:PORT", ...}` on
//   stdout once listening; everything else (oidc-provider's warnings) goes to stderr.
// * Clients get grant_types authorization_code + refresh_token, response_types code.
//   PKCE (S256 only) is accepted from everyone and required from public clients.
// * A refresh token is issued with every authorization_code grant to a client allowed the
//   refresh_token grant, whether or not offline_access was requested, and it does not end with
//   the browser session (like Cognito); refresh tokens of public clients rotate on every use.
// * ID tokens carry the user's claims even in the code flow: `groups` (always, scope openid),
//   `email`/`email_verified` (scope email, when the user has an email), `preferred_username`
//   and `name` (scope profile). The same claims come from the userinfo endpoint.
// * Login happens on this script's own interaction pages (dev interactions are off):
//   GET /interaction/:uid shows <form method="post" action="/interaction/:uid/login"> with
//   fields `login` and `password` (`username` is accepted too); a wrong password shows the form again with status 200.
//   Consent is granted automatically (or through a form posting to /interaction/:uid/confirm
//   when consent is "form"; an abort form is on the same page).
// * ID tokens are signed RS256 with the private JWK given as config.signing_key (generated
//   per run by tests/support/oidc_provider.py), published at /jwks.
// * RP-initiated logout (end_session_endpoint) and revocation are enabled.
// * SIGTERM/SIGINT close the server and exit 0.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

function loadConfig() {
  const raw = process.argv[2] ?? process.env.OIDC_PROVIDER_CONFIG ?? '{}';
  let config;
  try {
    config = JSON.parse(raw);
  } catch (error) {
    throw new Error(`provider.mjs: configuration is not valid JSON: ${error.message}`);
  }
  config.host ??= process.env.OIDC_PROVIDER_HOST ?? '127.0.0.1';
  config.port ??= Number.parseInt(process.env.OIDC_PROVIDER_PORT ?? '0', 10);
  config.clients ??= [];
  config.users ??= [];
  config.access_token_ttl ??= 3600;
  config.id_token_ttl ??= 3600;
  config.refresh_token_ttl ??= 86400;
  config.consent ??= 'auto';
  return config;
}

function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

function loginPage(uid, client, error) {
  const message = error ? `<p class="error">${escapeHtml(error)}</p>` : '';
  return page(
    'Sign in',
    `<p>Sign in to ${escapeHtml(client?.clientId ?? 'the application')}</p>
${message}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <input type="text" name="login" placeholder="Username" autofocus>
  <input type="password" name="password" placeholder="Password">
  <button type="submit" class="login-submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
  <button type="submit" name="abort" value="1">Cancel</button>
</form>`,
  );
}

function consentPage(uid, client, details) {
  const scopes = details.missingOIDCScope ?? [];
  return page(
    'Authorize',
    `<p>${escapeHtml(client?.clientId ?? 'The application')} asks for: ${escapeHtml(scopes.join(' '))}</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm">
  <input type="hidden" name="prompt" value="consent">
  <button type="submit" name="consent" value="yes" autofocus>Allow</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
  <button type="submit" name="abort" value="1">Deny</button>
</form>`,
  );
}

async function readForm(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) {
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function grantConsent(provider, interaction) {
  const { prompt: { details }, params, session } = interaction;
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) {
    grant.addOIDCScope(details.missingOIDCScope.join(' '));
  }
  if (details.missingOIDCClaims) {
    grant.addOIDCClaims(details.missingOIDCClaims);
  }
  if (details.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return grant.save();
}

function clientMetadata(client) {
  const isPublic = client.client_secret === null || client.client_secret === undefined;
  const metadata = {
    client_id: client.client_id,
    redirect_uris: client.redirect_uris ?? [],
    post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method:
      client.token_endpoint_auth_method ?? (isPublic ? 'none' : 'client_secret_basic'),
  };
  if (!isPublic) {
    metadata.client_secret = client.client_secret;
  }
  return metadata;
}

function accountClaims(user) {
  const claims = {
    sub: user.sub,
    preferred_username: user.username,
    name: user.username,
    groups: [...(user.groups ?? [])],
  };
  if (user.email) {
    claims.email = user.email;
    claims.email_verified = true;
  }
  return claims;
}

async function main() {
  const config = loadConfig();
  const usersBySub = new Map(config.users.map((user) => [user.sub, user]));
  const usersByName = new Map(config.users.map((user) => [user.username, user]));

  // The signing key comes from the caller (a fresh private JWK per run): generating RSA keys
  // in node at startup took seconds (once over 20 s) on a loaded 2-core machine.
  const signingKey = config.signing_key;
  if (!signingKey || signingKey.kty !== 'RSA' || !signingKey.d) {
    throw new Error('provider.mjs: config.signing_key must be a private RSA JWK');
  }

  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const { port } = server.address();
  const issuer = `http://${config.host}:${port}`;

  const provider = new Provider(issuer, {
    clients: config.clients.map(clientMetadata),
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub', 'groups'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    conformIdTokenClaims: false,
    async findAccount(_ctx, sub) {
      const user = usersBySub.get(sub);
      if (!user) {
        return undefined;
      }
      return { accountId: sub, async claims() { return accountClaims(user); } };
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
    },
    pkce: {
      required: (_ctx, client) => client.clientAuthMethod === 'none',
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.kind !== 'ClientCredentials',
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: config.access_token_ttl,
      IdToken: config.id_token_ttl,
      RefreshToken: config.refresh_token_ttl,
      AuthorizationCode: 60,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    clientBasedCORS: () => true,
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page(
        'Error',
        Object.entries(out)
          .map(([key, value]) => `<pre>${escapeHtml(key)}: ${escapeHtml(value)}</pre>`)
          .join('\n'),
      );
    },
  });

  // Our own interaction routes, mounted before oidc-provider's handlers.
  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(ctx.path);
    if (!match) {
      return next();
    }
    const [, uid, action] = match;
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== uid) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Error', '<p>interaction mismatch</p>');
      return undefined;
    }
    const client = await provider.Client.find(interaction.params.client_id);
    const promptName = interaction.prompt.name;
    ctx.set('Cache-Control', 'no-store');

    if (!action && ctx.method === 'GET') {
      if (promptName === 'login') {
        ctx.type = 'html';
        ctx.body = loginPage(uid, client);
        return undefined;
      }
      if (config.consent === 'form') {
        ctx.type = 'html';
        ctx.body = consentPage(uid, client, interaction.prompt.details);
        return undefined;
      }
      const grantId = await grantConsent(provider, interaction);
      ctx.respond = false;
      return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, {
        mergeWithLastSubmission: true,
      });
    }

    if (ctx.method !== 'POST' || !action) {
      ctx.status = 405;
      return undefined;
    }
    const form = await readForm(ctx);
    ctx.respond = false;

    if (action === 'abort') {
      return provider.interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
    }
    if (action === 'login') {
      if (promptName !== 'login') {
        ctx.respond = true;
        ctx.status = 400;
        ctx.type = 'html';
        ctx.body = page('Error', '<p>not a login prompt</p>');
        return undefined;
      }
      const username = form.get('login') ?? form.get('username') ?? '';
      const user = usersByName.get(username);
      if (!user || user.password !== (form.get('password') ?? '')) {
        ctx.respond = true;
        ctx.type = 'html';
        ctx.body = loginPage(uid, client, 'Incorrect username or password.');
        return undefined;
      }
      return provider.interactionFinished(ctx.req, ctx.res, {
        login: { accountId: user.sub },
      }, { mergeWithLastSubmission: false });
    }
    // confirm
    const grantId = await grantConsent(provider, interaction);
    return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  });

  provider.on('server_error', (_ctx, error) => {
    process.stderr.write(`provider.mjs server_error: ${error?.stack ?? error}\n`);
  });

  // oidc-provider validates static clients lazily; validate them now so a bad configuration
  // fails at startup (exit 1, message on stderr) instead of on the first authorization request.
  for (const client of config.clients) {
    try {
      await provider.Client.find(client.client_id);
    } catch (error) {
      throw new Error(`client ${client.client_id}: ${error.message}${error.error_description ? ` (${error.error_description})` : ''}`);
    }
  }

  server.on('request', provider.callback());

  const shutdown = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  process.stdout.write(`${JSON.stringify({
    ready: true,
    issuer,
    port,
    discovery: `${issuer}/.well-known/openid-configuration`,
  })}\n`);
}

main().catch((error) => {
  process.stderr.write(`provider.mjs failed: ${error?.stack ?? error}\n`);
  process.exit(1);
});
