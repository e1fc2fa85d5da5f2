// bffgate client: a tiny, dependency-free ES module for SPAs behind bffgate.
//
//   import { getUser, fetchApi, onLogout, login, logout, silentLogin,
//            listSessions, endSession } from '/bff/client.js';
//   const user = await getUser();            // null when signed out
//   if (!user) login(location.pathname);
//   onLogout(() => location.reload());       // every tab learns at once
//   const res = await fetchApi('/api/hello'); // adds X-CSRF: 1
//   if (await silentLogin()) location.reload(); // signed in without a redirect
//   const { sessions } = await listSessions(); // the user's own sessions
//
// Endpoints are resolved next to this file, so an app under /app2/ loads
// /app2/bff/client.js and talks to /app2/bff/*.
const base = new URL('.', import.meta.url);
const endpoint = (path) => new URL(path, base).toString();
const channelName = 'bffgate:' + base.pathname;
const pollEveryMs = 10000;

let user;
let logoutUrl = null;

/** getUser returns the signed-in user's claims, or null. */
export async function getUser({ slide = true } = {}) {
  const res = await fetch(endpoint('user') + (slide ? '' : '?slide=false'), {
    headers: { 'X-CSRF': '1' },
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (res.status === 401) {
    user = null;
    return null;
  }
  if (!res.ok) throw new Error('bffgate: /bff/user answered ' + res.status);
  user = await res.json();
  logoutUrl = user.logout_url;
  return user;
}

/** fetchApi is fetch with the X-CSRF header the gateway requires. */
export function fetchApi(path, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set('X-CSRF', '1');
  return fetch(path, { credentials: 'same-origin', ...init, headers });
}

/** login sends the browser to sign in, then back to returnUrl. */
export function login(returnUrl = location.pathname + location.search) {
  location.assign(endpoint('login') + '?returnUrl=' + encodeURIComponent(returnUrl));
}

/** logout starts RP-initiated logout for the current session. */
export async function logout(returnUrl) {
  if (!logoutUrl) await getUser({ slide: false });
  if (!logoutUrl) {
    location.assign(endpoint('signed-out'));
    return;
  }
  const u = new URL(logoutUrl, location.origin);
  if (returnUrl) u.searchParams.set('returnUrl', returnUrl);
  location.assign(u.toString());
}

const silentTimeoutMs = 10000;
let silentError = null;

/**
 * silentLogin tries to sign in without leaving the page: the gateway's
 * bff/silent-login runs the code flow with prompt=none in a hidden
 * iframe. It resolves true if a session now exists, false otherwise
 * (silentLoginError() says why: "login_required", "timeout", …). It only
 * works where the browser sends the IdP's cookies to an iframe: an IdP on
 * the same site as the app, or third-party cookies allowed.
 */
export function silentLogin({ timeoutMs = silentTimeoutMs } = {}) {
  return new Promise((resolve) => {
    const iframe = document.createElement('iframe');
    iframe.hidden = true;
    iframe.title = 'bffgate silent login';
    iframe.setAttribute('aria-hidden', 'true');
    let timer = 0;
    const done = (ok, error) => {
      clearTimeout(timer);
      window.removeEventListener('message', onMessage);
      iframe.remove();
      silentError = ok ? null : (error || 'error');
      resolve(ok);
    };
    // Only the gateway's own page, in this very iframe, is believed.
    function onMessage(e) {
      if (e.origin !== base.origin || e.source !== iframe.contentWindow) return;
      const d = e.data;
      if (!d || d.type !== 'bffgate:silent-login') return;
      done(d.ok === true, typeof d.error === 'string' ? d.error : null);
    }
    window.addEventListener('message', onMessage);
    timer = setTimeout(() => done(false, 'timeout'), timeoutMs);
    iframe.src = endpoint('silent-login');
    document.body.appendChild(iframe);
  });
}

/** silentLoginError is why the last silentLogin() resolved false, or null. */
export function silentLoginError() {
  return silentError;
}

/**
 * listSessions returns the signed-in user's sessions in this app:
 * { sessions: [{ handle, created, last_seen, browser, address, current }] }.
 */
export async function listSessions() {
  const res = await fetchApi(endpoint('sessions'), { cache: 'no-store' });
  if (!res.ok) throw new Error('bffgate: /bff/sessions answered ' + res.status);
  return res.json();
}

/**
 * endSession ends one of the user's sessions by its handle (from
 * listSessions): the gateway signs it out everywhere (its tabs, the
 * downstream apps, its refresh token). Resolves { ended, current }.
 */
export async function endSession(handle) {
  const res = await fetchApi(endpoint('sessions/end'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ handle }),
  });
  if (!res.ok) throw new Error('bffgate: /bff/sessions/end answered ' + res.status);
  return res.json();
}

const listeners = new Set();
let watching = false;
let fired = false;
let channel = null;

function fire(detail, fromChannel) {
  if (fired) return;
  fired = true;
  if (!fromChannel && channel) channel.postMessage(detail);
  for (const cb of listeners) {
    try { cb(detail); } catch (e) { console.error(e); }
  }
}

let polling = false;
let streamWorked = false;

// poll asks /bff/user every pollEveryMs. Only its 401 means a logout: an
// unreachable gateway or a 5xx (a restart, a deploy) does not. With
// resume, it goes back to an event stream once /bff/user answers.
function poll(resume) {
  if (polling) return;
  polling = true;
  const timer = setInterval(async () => {
    if (fired) return clearInterval(timer);
    try {
      const u = await getUser({ slide: false });
      if (u === null) {
        clearInterval(timer);
        fire({ cause: 'unknown' });
      } else if (resume) {
        clearInterval(timer);
        polling = false;
        watch();
      }
    } catch (_) { /* the gateway is unreachable: try again */ }
  }, pollEveryMs);
}

// watch opens the gateway's event stream. "logout" ends the session;
// "reconnect" (the gateway is shutting down) does not: a new stream is
// opened after the hinted delay, with jitter, so that the streams of a
// replica do not all reach the others at once.
function watch() {
  const es = new EventSource(endpoint('events'), { withCredentials: true });
  let opened = false;
  es.onopen = () => { opened = true; streamWorked = true; };
  es.addEventListener('logout', (e) => {
    es.close();
    let detail = { cause: 'unknown' };
    try { detail = JSON.parse(e.data); } catch (_) { /* keep default */ }
    fire(detail);
  });
  es.addEventListener('reconnect', (e) => {
    es.close();
    let ms = 2000;
    try { ms = JSON.parse(e.data).retry_ms || ms; } catch (_) { /* keep default */ }
    setTimeout(() => { if (!fired) watch(); }, ms + Math.random() * ms);
  });
  // A stream that never opened, or that the browser gave up on (the
  // gateway answered 401, or a proxy 502 during a restart), falls back to
  // polling, which decides; if streams ever worked here, one is tried
  // again once /bff/user answers.
  es.onerror = () => {
    if (!opened || es.readyState === EventSource.CLOSED) { es.close(); poll(streamWorked); }
  };
}

/**
 * onLogout calls callback once when the session ends: through the
 * gateway's event stream, with a fallback to polling /bff/user, and a
 * BroadcastChannel so that every tab of the app learns at once. A gateway
 * that restarts or shuts down is not a logout.
 */
export function onLogout(callback) {
  listeners.add(callback);
  if (watching) return () => listeners.delete(callback);
  watching = true;
  if ('BroadcastChannel' in window) {
    channel = new BroadcastChannel(channelName);
    channel.onmessage = (e) => fire(e.data, true);
  }
  if ('EventSource' in window) {
    watch();
  } else {
    poll(false);
  }
  return () => listeners.delete(callback);
}
