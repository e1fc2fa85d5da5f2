// Demo OpenID Provider for the bffgate examples, built on oidc-provider.
//
// DEV ONLY: in-memory storage, keys generated at every start, hard-coded demo
// users and secrets. Never expose this to anything but the loopback interface.
//
// Environment:
//   PORT                (9000)
//   HOST                (127.0.0.1)        address to listen on
//   ISSUER              (http://127.0.0.1:PORT)
//   GATEWAY_URL         (http://127.0.0.1:8080)  base of the default clients' URIs
//   DEMO_CLIENT_SECRET  (demo-secret-change-me)  secret of the clients demo and demo2
//   OTHER_CLIENT_SECRET (other-secret-change-me) secret of the client other
//   CLIENTS_FILE        path of a JSON array of client metadata replacing the
//                       default clients; ${ISSUER}, ${GATEWAY_URL},
//                       ${DEMO_CLIENT_SECRET} and ${OTHER_CLIENT_SECRET} are
//                       expanded in its string values
//   CLIENTS_JSON        the same JSON inline (CLIENTS_FILE wins)
//   ACCESS_TOKEN_TTL    seconds (300)
//   API_RESOURCE        (urn:bffgate:demo-api) the demo API's resource
//                       indicator (RFC 8707): a client_credentials grant
//                       with resource=API_RESOURCE gets a JWT access token
//                       (RFC 9068) with that aud and the scope api:read
//   CLIENT_TOKEN_TTL    seconds (ACCESS_TOKEN_TTL) of those tokens
//   USERINFO_ONLY_CLAIMS 1: profile and email claims only from userinfo, not
//                       in the ID token (oidc-provider's default, as some
//                       IdPs do); default: in the ID token too
//   ID_TOKEN_TTL        seconds (3600)
//   REFRESH_TOKEN_TTL   seconds (86400)
//   SESSION_TTL         seconds (86400)
//   COOKIE_KEYS         comma-separated secrets signing the IdP's cookies (random)
//   FAPI_PROFILE        2.0: oidc-provider's FAPI 2.0 mode (features.fapi:
//                       PAR required, client assertions' aud the issuer,
//                       redirect_uri always sent) and an ES256 signing
//                       key besides the RS256 one, for clients registered
//                       with id_token_signed_response_alg ES256 (the
//                       gateway's profile = "fapi2"); default: off
//   DEBUG               e.g. oidc-provider:* for the library's own logging

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const PORT = Number(process.env.PORT || 9000);
const HOST = process.env.HOST || '127.0.0.1';
const ISSUER = stripSlash(process.env.ISSUER || `http://127.0.0.1:${PORT}`);
const GATEWAY_URL = stripSlash(process.env.GATEWAY_URL || 'http://127.0.0.1:8080');
const DEMO_CLIENT_SECRET = process.env.DEMO_CLIENT_SECRET || 'demo-secret-change-me';
const OTHER_CLIENT_SECRET = process.env.OTHER_CLIENT_SECRET || 'other-secret-change-me';
const API_RESOURCE = process.env.API_RESOURCE || 'urn:bffgate:demo-api';

function stripSlash(s) {
  return s.replace(/\/+$/, '');
}

function seconds(name, def) {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
}

function log(event, fields = {}) {
  // One JSON line per event on stdout; never tokens, passwords or secrets.
  console.log(JSON.stringify({ time: new Date().toISOString(), event, ...fields }));
}

// ---------------------------------------------------------------- users

const USERS = {
  alice: {
    password: 'wonderland',
    claims: {
      sub: 'alice', name: 'Alice Liddell', given_name: 'Alice', family_name: 'Liddell',
      preferred_username: 'alice', email: 'alice@example.com', email_verified: true,
    },
  },
  bob: {
    password: 'builder',
    claims: {
      sub: 'bob', name: 'Bob the Builder', given_name: 'Bob', family_name: 'Builder',
      preferred_username: 'bob', email: 'bob@example.com', email_verified: true,
    },
  },
};

function checkPassword(login, password) {
  const user = Object.hasOwn(USERS, login) ? USERS[login] : undefined;
  if (!user) return undefined;
  const a = Buffer.from(String(password));
  const b = Buffer.from(user.password);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return undefined;
  return login;
}

async function findAccount(_ctx, id) {
  const user = Object.hasOwn(USERS, id) ? USERS[id] : undefined;
  if (!user) return undefined;
  return {
    accountId: id,
    // oidc-provider filters these by the granted scopes/claims.
    async claims() {
      return { ...user.claims };
    },
  };
}

// ---------------------------------------------------------------- clients

function defaultClients() {
  const gw = GATEWAY_URL;
  return [
    {
      // The demo SPA behind the gateway, path prefix "/".
      client_id: 'demo',
      client_secret: DEMO_CLIENT_SECRET,
      client_name: 'bffgate demo',
      redirect_uris: [`${gw}/bff/callback`],
      post_logout_redirect_uris: [`${gw}/bff/signed-out`],
      backchannel_logout_uri: `${gw}/bff/backchannel-logout`,
      backchannel_logout_session_required: true,
      // client_credentials: the gateway's own token for APIs with
      // token = "client" or "user_or_client".
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      // A second app behind the same gateway, path prefix "/app2/".
      client_id: 'demo2',
      client_secret: DEMO_CLIENT_SECRET,
      client_name: 'bffgate demo 2',
      redirect_uris: [`${gw}/app2/bff/callback`],
      post_logout_redirect_uris: [`${gw}/app2/bff/signed-out`],
      backchannel_logout_uri: `${gw}/app2/bff/backchannel-logout`,
      backchannel_logout_session_required: true,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      // "Another client" of the same IdP, not behind the gateway. Its
      // RP-initiated logout (confirmed with "Yes") ends the whole IdP session,
      // which sends back-channel logouts to demo and demo2. Its redirect URIs
      // are tiny pages served by this IdP (see /other/*).
      client_id: 'other',
      client_secret: OTHER_CLIENT_SECRET,
      client_name: 'another client',
      redirect_uris: [`${ISSUER}/other/callback`],
      post_logout_redirect_uris: [`${ISSUER}/other/signed-out`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ];
}

function expandVars(value) {
  const vars = { ISSUER, GATEWAY_URL, DEMO_CLIENT_SECRET, OTHER_CLIENT_SECRET };
  if (typeof value === 'string') {
    return value.replace(/\$\{(\w+)\}/g, (m, name) => (Object.hasOwn(vars, name) ? vars[name] : m));
  }
  if (Array.isArray(value)) return value.map(expandVars);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandVars(v)]));
  }
  return value;
}

function loadClients() {
  let raw;
  let source;
  if (process.env.CLIENTS_FILE) {
    source = process.env.CLIENTS_FILE;
    raw = fs.readFileSync(source, 'utf8');
  } else if (process.env.CLIENTS_JSON) {
    source = 'CLIENTS_JSON';
    raw = process.env.CLIENTS_JSON;
  } else {
    return { clients: defaultClients(), source: 'defaults' };
  }
  const parsed = JSON.parse(raw);
  const list = Array.isArray(parsed) ? parsed : parsed.clients;
  if (!Array.isArray(list)) {
    throw new Error(`${source}: expected a JSON array of clients (or {"clients": [...]})`);
  }
  return { clients: expandVars(list), source };
}

// ---------------------------------------------------------------- keys

function generateSigningKey() {
  // Fresh RS256 key at every start (dev only): tokens do not survive restarts.
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `dev-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

// signingKeys are the IdP's keys: RS256, and with FAPI_PROFILE also ES256
// (the FAPI 2.0 profile allows only PS256 and ES256).
function signingKeys() {
  const keys = [generateSigningKey()];
  if (process.env.FAPI_PROFILE) {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = privateKey.export({ format: 'jwk' });
    keys.push({ ...jwk, kid: `dev-ec-${crypto.randomBytes(6).toString('hex')}`, alg: 'ES256', use: 'sig' });
  }
  return keys;
}

// ---------------------------------------------------------------- provider

async function getResourceServerInfo(_ctx, resourceIndicator) {
  if (resourceIndicator !== API_RESOURCE) {
    throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
  }
  return {
    scope: 'api:read',
    audience: API_RESOURCE,
    accessTokenTTL: seconds('CLIENT_TOKEN_TTL', seconds('ACCESS_TOKEN_TTL', 300)),
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

function buildProvider(clients) {
  const cookieKeys = process.env.COOKIE_KEYS
    ? process.env.COOKIE_KEYS.split(',')
    : [crypto.randomBytes(32).toString('hex')];

  const configuration = {
    clients,
    findAccount,
    jwks: { keys: signingKeys() },
    cookies: {
      keys: cookieKeys,
      long: { sameSite: 'lax' },
      short: { sameSite: 'lax' },
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    // By default oidc-provider puts scope-requested claims into the ID token
    // only when no access token is issued (i.e. never for response_type=code).
    // The demo wants them in the ID token so the gateway has name/email without
    // calling userinfo. USERINFO_ONLY_CLAIMS=1 keeps them out (e2e tests of
    // the gateway's userinfo = true).
    conformIdTokenClaims: process.env.USERINFO_ONLY_CLAIMS === '1',
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      revocation: { enabled: true, allowedPolicy: revocationAllowed },
      introspection: { enabled: true, allowedPolicy: introspectionAllowed },
      claimsParameter: { enabled: false },
      // The gateway's client tokens (token = "client" in [[apps.apis]]).
      clientCredentials: { enabled: true },
      // RFC 9449: a token request with a DPoP proof (the gateway's
      // dpop = true) gets tokens bound to the proof's key (token_type DPoP,
      // cnf.jkt in introspection). DPoP-Nonce headers are sent (keyed with
      // a random secret per start); DPOP_REQUIRE_NONCE=1 demands them.
      // FAPI_PROFILE=2.0: FAPI 2.0 Security Profile mode for every client.
      fapi: process.env.FAPI_PROFILE
        ? { enabled: true, profile: process.env.FAPI_PROFILE }
        : { enabled: false },
      dPoP: {
        enabled: true,
        nonceSecret: crypto.randomBytes(32),
        requireNonce: () => process.env.DPOP_REQUIRE_NONCE === '1',
      },
      // RFC 8707: a token request naming API_RESOURCE gets a JWT access
      // token for it (aud API_RESOURCE, scope api:read at most). Requests
      // without a resource (the SPA's login) get opaque tokens for
      // userinfo, as before.
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo,
      },
    },
    // Default: only when the grant has offline_access. The demo always issues
    // one to clients allowed the refresh_token grant.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    pkce: { required: () => true },
    ttl: {
      AccessToken: seconds('ACCESS_TOKEN_TTL', 300),
      ClientCredentials: seconds('CLIENT_TOKEN_TTL', seconds('ACCESS_TOKEN_TTL', 300)),
      AuthorizationCode: 60,
      IdToken: seconds('ID_TOKEN_TTL', 3600),
      RefreshToken: seconds('REFRESH_TOKEN_TTL', 86400),
      Session: seconds('SESSION_TTL', 86400),
      Grant: seconds('SESSION_TTL', 86400),
      Interaction: 3600,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // oidc-provider adds an SSRF-protecting undici dispatcher that refuses
    // special-use addresses such as 127.0.0.1, which would make every
    // back-channel logout to the local gateway fail. Drop it (dev only).
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
    renderError,
  };

  const provider = new Provider(ISSUER, configuration);
  // Plain HTTP on loopback: no proxy, cookies without the secure flag.
  provider.proxy = false;
  attachEventLogging(provider);
  return provider;
}

// Same rules as oidc-provider's defaults, spelled out (and so without its
// "you SHOULD change" notices): any confidential client may introspect any
// token (the demo API introspects with the demo client's credentials); a
// client may revoke only its own tokens.
async function introspectionAllowed(ctx, client, token) {
  return !(client.clientAuthMethod === 'none' && token.clientId !== client.clientId);
}

async function revocationAllowed(ctx, client, token) {
  if (token.clientId !== client.clientId) {
    if (client.clientAuthMethod === 'none') return false;
    throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
  }
  return true;
}

function attachEventLogging(provider) {
  provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
    log('backchannel.success', { client_id: client.clientId, uri: client.backchannelLogoutUri, sub: accountId, sid });
  });
  provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => {
    log('backchannel.error', {
      client_id: client.clientId, uri: client.backchannelLogoutUri, sub: accountId, sid,
      error: err.message, cause: err.cause?.message,
    });
  });
  provider.on('end_session.success', (ctx) => {
    log('end_session.success', { client_id: ctx.oidc.client?.clientId });
  });
  provider.on('grant.success', (ctx) => {
    log('grant.success', { client_id: ctx.oidc.client?.clientId, grant_type: ctx.oidc.params?.grant_type });
  });
  provider.on('grant.error', (ctx, err) => {
    log('grant.error', { client_id: ctx.oidc.client?.clientId, error: err.message, detail: err.error_description });
  });
  provider.on('authorization.error', (ctx, err) => {
    log('authorization.error', { client_id: ctx.oidc?.client?.clientId, error: err.message, detail: err.error_description });
  });
  provider.on('end_session.error', (_ctx, err) => {
    log('end_session.error', { error: err.message, detail: err.error_description });
  });
  provider.on('revocation.error', (_ctx, err) => {
    log('revocation.error', { error: err.message, detail: err.error_description });
  });
  provider.on('introspection.error', (_ctx, err) => {
    log('introspection.error', { error: err.message, detail: err.error_description });
  });
  provider.on('server_error', (_ctx, err) => {
    log('server_error', { error: err.message, stack: err.stack });
  });
}

// ---------------------------------------------------------------- pages

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#111827;margin:0}
main{max-width:380px;margin:64px auto;background:#fff;border-radius:10px;box-shadow:0 1px 4px rgba(0,0,0,.12);padding:28px 32px}
h1{font-size:1.25rem;margin:0 0 16px}
label{display:block;font-size:.9rem;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:8px 10px;border:1px solid #d1d5db;border-radius:6px;font-size:1rem}
button{margin-top:18px;width:100%;padding:10px;border:0;border-radius:6px;background:#4f46e5;color:#fff;font-size:1rem;cursor:pointer}
button.secondary{background:#e5e7eb;color:#111827;margin-top:8px}
.error{color:#b91c1c;background:#fee2e2;border-radius:6px;padding:8px 10px;margin-bottom:8px}
.muted{color:#6b7280;font-size:.85rem}
a{color:#4f46e5}
code{font-size:.85rem;word-break:break-all}
`;

function htmlEscape(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${htmlEscape(title)}</title>
<style>${STYLE}</style>
</head>
<body><main>
${body}
</main></body>
</html>`;
}

function loginPage({ uid, clientName, login = '', error }) {
  return page('Sign in', `<h1>Sign in to ${htmlEscape(clientName)}</h1>
${error ? `<p class="error" id="error">${htmlEscape(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${htmlEscape(uid)}/login" autocomplete="off">
  <label for="login">Username</label>
  <input id="login" name="login" value="${htmlEscape(login)}" autofocus required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button id="submit" type="submit">Sign in</button>
</form>
<form method="get" action="/interaction/${htmlEscape(uid)}/abort">
  <button id="cancel" class="secondary" type="submit">Cancel</button>
</form>
<p class="muted">Demo users: alice / wonderland, bob / builder</p>`);
}

// features.rpInitiatedLogout.logoutSource: `form` is oidc-provider's hidden
// form (id "op.logoutForm", field "xsrf"). Submitting with logout=yes ends the
// whole IdP session (back-channel logout to every client in it); without it only
// the requesting client's part of the session ends.
async function logoutSource(ctx, form) {
  ctx.type = 'html';
  ctx.body = page('Sign out', `<h1>Sign out of ${htmlEscape(ctx.host)}?</h1>
${form}
<button id="logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out everywhere</button>
<button id="logout-no" class="secondary" type="submit" form="op.logoutForm">No, only this app</button>`);
}

async function postLogoutSuccessSource(ctx) {
  const name = ctx.oidc.client?.clientName || ctx.oidc.client?.clientId;
  ctx.type = 'html';
  ctx.body = page('Signed out', `<h1 id="signed-out">Signed out</h1>
<p>You have been signed out${name ? ` of ${htmlEscape(name)}` : ''}.</p>`);
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Error', `<h1>Something went wrong</h1>
<p class="error" id="error"><b>${htmlEscape(out.error)}</b>: ${htmlEscape(out.error_description)}</p>`);
}

// ---------------------------------------------------------------- interactions

function send(res, status, html, headers = {}) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // No form-action: Chromium applies it to the whole redirect chain after the
    // login POST, which ends at the client's redirect_uri on another origin.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ...headers,
  });
  res.end(html);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Grant every scope and claim the client asked for, so that the login never
// stops at a consent page (the gateway drives the browser and cannot click
// one). This includes offline_access, which oidc-provider keeps only if the
// request has no prompt parameter or one that includes consent.
async function autoConsent(provider, details) {
  const { prompt: { details: missing }, params, session } = details;
  let { grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });

  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const savedId = await grant.save();
  const consent = {};
  if (!grantId) {
    grantId = savedId;
    consent.grantId = grantId;
  }
  return consent;
}

async function clientName(provider, clientId) {
  const client = await provider.Client.find(clientId);
  return client?.clientName || clientId;
}

async function handleInteraction(provider, req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([\w-]+)(?:\/(login|abort|confirm))?$/);
  if (!m) return send(res, 404, page('Not found', '<h1>Not found</h1>'));
  const [, uid, action] = m;

  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    return send(res, 400, page('Error', '<h1>Interaction mismatch</h1><p>Start the sign-in again.</p>'));
  }
  const { prompt, params } = details;

  if (action === 'abort') {
    log('interaction.abort', { client_id: params.client_id });
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const login = form.get('login') || '';
    const accountId = checkPassword(login, form.get('password') || '');
    if (!accountId) {
      log('login.failed', { client_id: params.client_id, login });
      return send(res, 200, loginPage({
        uid, clientName: await clientName(provider, params.client_id), login, error: 'Invalid username or password.',
      }));
    }
    log('login.success', { client_id: params.client_id, sub: accountId });
    return provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  }

  if (prompt.name === 'login') {
    return send(res, 200, loginPage({ uid, clientName: await clientName(provider, params.client_id) }));
  }

  if (prompt.name === 'consent') {
    // Auto-granted, on GET (the redirect after login) and on POST .../confirm alike.
    const consent = await autoConsent(provider, details);
    log('consent.auto', {
      client_id: params.client_id, sub: details.session?.accountId, scope: params.scope, prompt: params.prompt,
    });
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }

  return send(res, 400, page('Error', `<h1>Unsupported prompt</h1><p>${htmlEscape(prompt.name)}</p>`));
}

// Landing pages for the "other" client's redirect URIs: they only show what
// arrived (a script exchanges the code itself).
function handleOther(res, url) {
  if (url.pathname === '/other/callback') {
    const code = url.searchParams.get('code');
    const error = url.searchParams.get('error');
    return send(res, 200, page('other: callback', error
      ? `<h1 id="other-error">Sign-in failed</h1><p>${htmlEscape(error)}: ${htmlEscape(url.searchParams.get('error_description'))}</p>`
      : `<h1 id="other-signed-in">other: code received</h1><p class="muted">code <code id="code">${htmlEscape(code)}</code></p>`));
  }
  if (url.pathname === '/other/signed-out') {
    return send(res, 200, page('other: signed out', `<h1 id="other-signed-out">other: signed out</h1>
<p class="muted">state <code id="state">${htmlEscape(url.searchParams.get('state'))}</code></p>`));
  }
  return send(res, 404, page('Not found', '<h1>Not found</h1>'));
}

// ---------------------------------------------------------------- server

function createServer(provider) {
  const oidc = provider.callback();
  return http.createServer((req, res) => {
    const url = new URL(req.url, ISSUER);
    let handled;
    if (url.pathname.startsWith('/interaction/')) {
      handled = handleInteraction(provider, req, res, url);
    } else if (url.pathname.startsWith('/other/')) {
      handled = Promise.resolve(handleOther(res, url));
    } else if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    } else {
      oidc(req, res);
      return;
    }
    handled.catch((err) => {
      const expected = err instanceof errors.SessionNotFound || err instanceof errors.InvalidRequest;
      log('interaction.error', { path: url.pathname, error: err.message });
      if (!res.headersSent) {
        send(res, expected ? 400 : 500, page('Error', `<h1>Sign-in failed</h1><p class="error" id="error">${htmlEscape(err.message)}</p>`));
      }
    });
  });
}

function main() {
  const { clients, source } = loadClients();
  const provider = buildProvider(clients);
  const server = createServer(provider);

  server.listen(PORT, HOST, () => {
    log('config', {
      issuer: ISSUER,
      gateway_url: GATEWAY_URL,
      clients_source: source,
      clients: clients.map((c) => c.client_id),
    });
    console.log(`oidc-provider listening on http://${HOST}:${PORT}`);
  });

  const stop = (signal) => {
    log('shutdown', { signal });
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main();
