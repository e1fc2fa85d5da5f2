// A second OpenID Provider for the bffgate e2e tests: oidc-provider 6.31.1,
// the last line with Front-Channel Logout and Session Management (both
// removed in 7.x). Same env interface and page element ids as
// examples/idp/server.js, so the tests drive both the same way.
//
// DEV ONLY: in-memory storage, keys generated at every start, hard-coded
// demo users and secrets. Never expose this to anything but loopback.
//
// Environment:
//   PORT                (9000)
//   HOST                (127.0.0.1)
//   ISSUER              (http://127.0.0.1:PORT)
//   GATEWAY_URL         (http://127.0.0.1:8080)  base of the default clients' URIs
//   DEMO_CLIENT_SECRET  (demo-secret-change-me)  secret of demo and demo2
//   OTHER_CLIENT_SECRET (other-secret-change-me) secret of other
//   CLIENTS_FILE / CLIENTS_JSON  JSON array of client metadata replacing the
//                       defaults; ${ISSUER}, ${GATEWAY_URL},
//                       ${DEMO_CLIENT_SECRET}, ${OTHER_CLIENT_SECRET} expanded
//   ACCESS_TOKEN_TTL (300), ID_TOKEN_TTL (3600), REFRESH_TOKEN_TTL (86400),
//   SESSION_TTL (86400)  seconds
//   COOKIE_KEYS         comma-separated cookie signing keys (random)
//
// The check_session_iframe page of oidc-provider 6 loads jsSHA from
// cdnjs.cloudflare.com and a polyfill from polyfill.io (a domain that has
// served malware since 2024). A middleware below rewrites that page: jsSHA
// 2.3.1 comes from this server (the npm package's file, which has the same
// SRI hash as the CDN copy), and the polyfill.io script is dropped. The page
// is refused (500) if the rewrite ever stops matching.

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const { Provider, errors } = require('oidc-provider');

const PORT = Number(process.env.PORT || 9000);
const HOST = process.env.HOST || '127.0.0.1';
const ISSUER = stripSlash(process.env.ISSUER || `http://127.0.0.1:${PORT}`);
const GATEWAY_URL = stripSlash(process.env.GATEWAY_URL || 'http://127.0.0.1:8080');
const DEMO_CLIENT_SECRET = process.env.DEMO_CLIENT_SECRET || 'demo-secret-change-me';
const OTHER_CLIENT_SECRET = process.env.OTHER_CLIENT_SECRET || 'other-secret-change-me';

const JSSHA_PATH = '/assets/jssha-2.3.1/sha256.js';
const JSSHA_SOURCE = fs.readFileSync(path.join(path.dirname(require.resolve('jssha/package.json')), 'src', 'sha256.js'));
const JSSHA_SRI = `sha256-${crypto.createHash('sha256').update(JSSHA_SOURCE).digest('base64')}`;

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

function has(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function checkPassword(login, password) {
  const user = has(USERS, login) ? USERS[login] : undefined;
  if (!user) return undefined;
  const a = Buffer.from(String(password));
  const b = Buffer.from(user.password);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return undefined;
  return login;
}

async function findAccount(_ctx, id) {
  const user = has(USERS, id) ? USERS[id] : undefined;
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return { ...user.claims };
    },
  };
}

// ---------------------------------------------------------------- clients

function gatewayClient(id, prefix, name) {
  const base = `${GATEWAY_URL}${prefix}`;
  return {
    client_id: id,
    client_secret: DEMO_CLIENT_SECRET,
    client_name: name,
    redirect_uris: [`${base}bff/callback`],
    post_logout_redirect_uris: [`${base}bff/signed-out`],
    backchannel_logout_uri: `${base}bff/backchannel-logout`,
    backchannel_logout_session_required: true,
    frontchannel_logout_uri: `${base}bff/frontchannel-logout`,
    frontchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

function defaultClients() {
  return [
    gatewayClient('demo', '/', 'bffgate demo'),
    gatewayClient('demo2', '/app2/', 'bffgate demo 2'),
    {
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
  const vars = {
    ISSUER, GATEWAY_URL, DEMO_CLIENT_SECRET, OTHER_CLIENT_SECRET,
  };
  if (typeof value === 'string') {
    return value.replace(/\$\{(\w+)\}/g, (m, name) => (has(vars, name) ? vars[name] : m));
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

// ---------------------------------------------------------------- provider

function generateSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    ...jwk, kid: `dev-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig',
  };
}

function buildProvider(clients) {
  const cookieKeys = process.env.COOKIE_KEYS
    ? process.env.COOKIE_KEYS.split(',')
    : [crypto.randomBytes(32).toString('hex')];

  const configuration = {
    clients,
    findAccount,
    jwks: { keys: [generateSigningKey()] },
    cookies: {
      keys: cookieKeys,
      long: { sameSite: 'lax', signed: true },
      short: { sameSite: 'lax', signed: true },
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true, ack: 'draft-06' },
      frontchannelLogout: { enabled: true, ack: 'draft-04', logoutPendingSource },
      sessionManagement: { enabled: true, ack: 'draft-30' },
      // 6.x name of RP-Initiated Logout (enabled by default in 6.x).
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      revocation: { enabled: true },
      introspection: { enabled: true },
      claimsParameter: { enabled: false },
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    pkce: { required: () => true, methods: ['S256'] },
    ttl: {
      AccessToken: seconds('ACCESS_TOKEN_TTL', 300),
      AuthorizationCode: 60,
      IdToken: seconds('ID_TOKEN_TTL', 3600),
      RefreshToken: seconds('REFRESH_TOKEN_TTL', 86400),
      Session: seconds('SESSION_TTL', 86400),
      Interaction: 3600,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    renderError,
  };

  const provider = new Provider(ISSUER, configuration);
  provider.proxy = false;
  provider.use(rewriteCheckSession);
  attachEventLogging(provider);
  return provider;
}

// Koa middleware: serve the check_session_iframe page with the local jsSHA
// and without polyfill.io.
async function rewriteCheckSession(ctx, next) {
  await next();
  if (ctx.method !== 'GET' || ctx.path !== '/session/check' || typeof ctx.body !== 'string') return;
  const cdn = /src="https:\/\/cdnjs\.cloudflare\.com\/ajax\/libs\/jsSHA\/2\.3\.1\/sha256\.js" integrity="[^"]*" crossorigin="anonymous"/;
  const polyfill = /<script [^>]*src="https:\/\/polyfill\.io\/[^"]*"><\/script>\n?/;
  let body = ctx.body;
  if (!cdn.test(body) || !polyfill.test(body)) {
    log('check_session.rewrite_failed');
    ctx.status = 500;
    ctx.type = 'text/plain';
    ctx.body = 'check_session_iframe: the page changed; refusing to serve remote scripts\n';
    return;
  }
  body = body.replace(cdn, `src="${JSSHA_PATH}" integrity="${JSSHA_SRI}"`).replace(polyfill, '');
  if (/https?:\/\//.test(body.replace(/<script[^>]*src="\/[^"]*"/g, ''))) {
    log('check_session.rewrite_failed', { reason: 'remote URL left' });
    ctx.status = 500;
    ctx.type = 'text/plain';
    ctx.body = 'check_session_iframe: remote URL left in the page\n';
    return;
  }
  ctx.body = body;
}

function attachEventLogging(provider) {
  provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
    log('backchannel.success', {
      client_id: client.clientId, uri: client.backchannelLogoutUri, sub: accountId, sid,
    });
  });
  provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => {
    log('backchannel.error', {
      client_id: client.clientId, uri: client.backchannelLogoutUri, sub: accountId, sid, error: err.message,
    });
  });
  provider.on('end_session.success', (ctx) => {
    log('end_session.success', { client_id: ctx.oidc.client && ctx.oidc.client.clientId });
  });
  provider.on('grant.success', (ctx) => {
    log('grant.success', { client_id: ctx.oidc.client && ctx.oidc.client.clientId, grant_type: ctx.oidc.params && ctx.oidc.params.grant_type });
  });
  provider.on('grant.revoked', (ctx, grantId) => {
    log('grant.revoked', { client_id: ctx.oidc.client && ctx.oidc.client.clientId, grant_id: grantId });
  });
  provider.on('refresh_token.destroyed', (token) => {
    log('refresh_token.destroyed', { client_id: token.clientId, grant_id: token.grantId, sub: token.accountId });
  });
  for (const name of ['grant.error', 'authorization.error', 'end_session.error', 'revocation.error',
    'introspection.error', 'check_session_origin.error', 'check_session.error']) {
    provider.on(name, (ctx, err) => {
      log(name, { error: err && err.message, detail: err && err.error_description });
    });
  }
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
button{margin-top:18px;width:100%;padding:10px;border:0;border-radius:6px;background:#0f766e;color:#fff;font-size:1rem;cursor:pointer}
button.secondary{background:#e5e7eb;color:#111827;margin-top:8px}
.error{color:#b91c1c;background:#fee2e2;border-radius:6px;padding:8px 10px;margin-bottom:8px}
.muted{color:#6b7280;font-size:.85rem}
code{font-size:.85rem;word-break:break-all}
iframe.fc{visibility:hidden;position:absolute;left:0;top:0;height:0;width:0;border:none}
`;

function htmlEscape(s) {
  return String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body, head = '') {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${htmlEscape(title)}</title>
<style>${STYLE}</style>
${head}
</head>
<body><main>
${body}
</main></body>
</html>`;
}

function loginPage({
  uid, clientName, login = '', error,
}) {
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
<p class="muted">oidc-provider 6.31.1 · demo users: alice / wonderland, bob / builder</p>`);
}

async function logoutSource(ctx, form) {
  ctx.type = 'html';
  ctx.body = page('Sign out', `<h1>Sign out of ${htmlEscape(ctx.host)}?</h1>
${form}
<button id="logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out everywhere</button>
<button id="logout-no" class="secondary" type="submit" form="op.logoutForm">No, only this app</button>`);
}

async function postLogoutSuccessSource(ctx) {
  const client = ctx.oidc.client;
  const name = client && (client.clientName || client.clientId);
  ctx.type = 'html';
  ctx.body = page('Signed out', `<h1 id="signed-out">Signed out</h1>
<p>You have been signed out${name ? ` of ${htmlEscape(name)}` : ''}.</p>`);
}

// features.frontchannelLogout.logoutPendingSource: one hidden iframe per
// front-channel logout URI (id "frontchannel-frames"), then on to the
// post_logout_redirect_uri once all have loaded, or after 5 s at most.
async function logoutPendingSource(ctx, frames, postLogoutRedirectUri) {
  const iframes = frames.map((f) => f.replace('<iframe ', '<iframe class="fc" '));
  log('frontchannel.pending', { frames: frames.length });
  ctx.type = 'html';
  ctx.body = page('Signing out', `<h1 id="frontchannel-pending">Signing out…</h1>
<div id="frontchannel-frames">${iframes.join('')}</div>
<script>
(function () {
  var target = ${JSON.stringify(postLogoutRedirectUri)};
  var frames = Array.prototype.slice.call(document.querySelectorAll('#frontchannel-frames iframe'));
  var loaded = 0;
  function done() { window.location.replace(target); }
  frames.forEach(function (f) { f.onload = function () { loaded += 1; if (loaded === frames.length) done(); }; });
  if (frames.length === 0) done();
  setTimeout(done, 5000);
}());
</script>`);
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

async function clientName(provider, clientId) {
  const client = await provider.Client.find(clientId);
  return (client && client.clientName) || clientId;
}

async function handleInteraction(provider, req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([\w-]+)(?:\/(login|abort))?$/);
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
    // 6.x: login.account (7.x+ renamed it accountId).
    return provider.interactionFinished(req, res, { login: { account: accountId } }, { mergeWithLastSubmission: false });
  }

  if (prompt.name === 'login') {
    return send(res, 200, loginPage({ uid, clientName: await clientName(provider, params.client_id) }));
  }

  if (prompt.name === 'consent') {
    // Everything requested is granted: nothing rejected.
    log('consent.auto', { client_id: params.client_id, scope: params.scope, prompt: params.prompt });
    return provider.interactionFinished(req, res, {
      consent: { rejectedScopes: [], rejectedClaims: [] },
    }, { mergeWithLastSubmission: true });
  }

  return send(res, 400, page('Error', `<h1>Unsupported prompt</h1><p>${htmlEscape(prompt.name)}</p>`));
}

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
  const oidc = provider.callback; // 6.x: a getter returning the handler
  return http.createServer((req, res) => {
    const url = new URL(req.url, ISSUER);
    res.on('finish', () => {
      log('http', { method: req.method, path: url.pathname, status: res.statusCode });
    });
    let handled;
    if (url.pathname.startsWith('/interaction/')) {
      handled = handleInteraction(provider, req, res, url);
    } else if (url.pathname.startsWith('/other/')) {
      handled = Promise.resolve(handleOther(res, url));
    } else if (url.pathname === JSSHA_PATH) {
      res.writeHead(200, {
        'content-type': 'application/javascript; charset=utf-8',
        'cache-control': 'public, max-age=3600',
        'access-control-allow-origin': '*',
        'x-content-type-options': 'nosniff',
      });
      res.end(JSSHA_SOURCE);
      return;
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
      oidc_provider: require('oidc-provider/package.json').version,
    });
    console.log(`oidc-provider listening on http://${HOST}:${PORT}`);
  });

  const stop = (signal) => {
    log('shutdown', { signal });
    server.close(() => process.exit(0));
    if (server.closeAllConnections) server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main();
