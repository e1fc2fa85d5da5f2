// bffgate demo SPA: an ES module on the gateway's client module
// (bff/client.js). No framework, no inline script (CSP: script-src 'self').
// Everything it knows about the user comes from the gateway's /bff/user; the
// tokens never reach the browser.
//
// "./bff/client.js" resolves next to this file, i.e. under the app's path
// prefix ("/" or e.g. "/app2/"), so the same files serve every app.
import {
  getUser, fetchApi, onLogout, login, logout, silentLogin, silentLoginError, listSessions, endSession,
} from './bff/client.js';

const $ = (id) => document.getElementById(id);

const el = {
  status: $('status'),
  user: $('user'),
  signedOutText: $('signed-out-text'),
  reason: $('signed-out-reason'),
  name: $('user-name'),
  sub: $('user-sub'),
  email: $('user-email'),
  expires: $('user-expires'),
  login: $('login'),
  logout: $('logout'),
  callApi: $('call-api'),
  apiResult: $('api-result'),
  silentLogin: $('silent-login'),
  silentResult: $('silent-result'),
  sessions: $('sessions'),
  sessionsList: $('sessions-list'),
  refreshSessions: $('refresh-sessions'),
  socketOpen: $('socket-open'),
  socketSend: $('socket-send'),
  socketState: $('socket-state'),
};

// The app's own directory ("/" or "/app2/"): where login comes back to.
const basePath = new URL('.', window.location.href).pathname;

let watching = false;

function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
}

// Why the session ended, by the cause of the gateway's logout event.
const reasons = {
  backchannel: 'You were signed out at the identity provider.',
  frontchannel: 'You were signed out at the identity provider.',
  rp_initiated: 'You signed out (in another tab).',
  admin: 'An administrator ended your session.',
  expired: 'Your session expired.',
  refresh_failed: 'The identity provider no longer accepts your sign-in (it could not be renewed).',
  replaced: 'A new sign-in in this browser replaced this session.',
  user: 'This session was ended from your list of sessions.',
};

function showSignedOut(cause) {
  setStatus('signed-out', 'Signed out');
  if (cause) el.status.dataset.cause = cause;
  el.reason.textContent = cause ? (reasons[cause] || 'Your session ended.') : '';
  el.reason.hidden = !cause;
  el.user.hidden = true;
  el.signedOutText.hidden = false;
  el.login.hidden = false;
  el.silentLogin.hidden = false;
  el.logout.hidden = true;
  el.sessions.hidden = true;
  el.sessionsList.replaceChildren();
}

function formatSeconds(s) {
  if (typeof s !== 'number' || !isFinite(s)) return '—';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
}

function showUser(user) {
  setStatus('signed-in', `Signed in as ${user.name || user.preferred_username || user.sub}`);
  delete el.status.dataset.cause;
  el.reason.hidden = true;
  el.name.textContent = user.name || '—';
  el.sub.textContent = user.sub || '—';
  el.email.textContent = user.email || '—';
  el.expires.textContent = formatSeconds(user.session_expires_in);
  el.user.hidden = false;
  el.signedOutText.hidden = true;
  el.login.hidden = true;
  el.silentLogin.hidden = true;
  el.logout.hidden = false;
  el.sessions.hidden = false;
}

// watchLogout switches the page to "Signed out" by itself the moment the
// session ends anywhere (IdP logout, another tab, admin, expiry): the
// gateway's event stream, shared with every tab through a BroadcastChannel.
// It clears the API result on the screen and says why.
function watchLogout() {
  if (watching) return;
  watching = true;
  onLogout((detail) => {
    clearApiResult(); // it belonged to the session that ended
    showSignedOut((detail && detail.cause) || 'unknown');
  });
}

function clearApiResult() {
  el.apiResult.dataset.state = 'idle';
  delete el.apiResult.dataset.status;
  el.apiResult.textContent = 'Not called yet.';
}

async function loadUser({ slide = true } = {}) {
  let user;
  try {
    user = await getUser({ slide });
  } catch (err) {
    setStatus('error', err instanceof TypeError ? 'Gateway unreachable' : err.message);
    return;
  }
  if (!user) {
    showSignedOut();
    return;
  }
  showUser(user);
  watchLogout();
  loadSessions();
}

// trySilentLogin signs in without leaving the page if the IdP still knows
// the user (a hidden iframe, prompt=none), and says what happened.
async function trySilentLogin() {
  el.silentLogin.disabled = true;
  el.silentResult.hidden = false;
  el.silentResult.dataset.state = 'loading';
  el.silentResult.textContent = 'Asking the identity provider…';
  const ok = await silentLogin();
  el.silentLogin.disabled = false;
  if (ok) {
    el.silentResult.dataset.state = 'ok';
    delete el.silentResult.dataset.error;
    el.silentResult.textContent = 'Signed in silently.';
    await loadUser();
    return;
  }
  const error = silentLoginError();
  // The IdP's "the user must interact" answers are not errors.
  const answers = ['login_required', 'interaction_required', 'consent_required', 'account_selection_required'];
  el.silentResult.dataset.state = answers.includes(error) ? 'none' : 'error';
  el.silentResult.dataset.error = error || '';
  el.silentResult.textContent = error === 'login_required'
    ? 'No session at the identity provider: sign in with the Login button.'
    : `Silent sign-in did not work (${error}): sign in with the Login button.`;
}

function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? '—' : d.toLocaleString();
}

// loadSessions lists the user's sessions in this app, each with an End
// button (the current one ends this browser's session).
async function loadSessions() {
  let list;
  try {
    list = (await listSessions()).sessions || [];
  } catch (err) {
    el.sessionsList.dataset.state = 'error';
    el.sessionsList.replaceChildren(Object.assign(document.createElement('li'), { textContent: err.message }));
    return;
  }
  el.sessionsList.dataset.state = 'ok';
  el.sessionsList.replaceChildren(...list.map((s) => {
    const li = document.createElement('li');
    li.dataset.handle = s.handle;
    li.dataset.current = String(s.current);
    const text = document.createElement('div');
    const name = document.createElement('strong');
    name.className = 'browser';
    name.textContent = (s.browser || 'Unknown browser') + (s.current ? ' (this browser)' : '');
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `from ${s.address || '—'} · signed in ${when(s.created)} · last seen ${when(s.last_seen)}`;
    text.append(name, meta);
    const end = document.createElement('button');
    end.type = 'button';
    end.className = 'end secondary';
    end.textContent = 'End';
    end.addEventListener('click', async () => {
      end.disabled = true;
      try {
        const res = await endSession(s.handle);
        if (!res.current) loadSessions();
      } catch (err) {
        end.disabled = false;
        el.sessionsList.dataset.state = 'error';
      }
    });
    li.append(text, end);
    return li;
  }));
}

async function callApi() {
  el.callApi.disabled = true;
  el.apiResult.dataset.state = 'loading';
  el.apiResult.textContent = 'Calling…';
  try {
    const res = await fetchApi('api/hello', { cache: 'no-store' });
    const text = await res.text();
    let body = text;
    try {
      body = JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      // not JSON: show as is
    }
    el.apiResult.dataset.state = res.ok ? 'ok' : 'error';
    el.apiResult.dataset.status = String(res.status);
    el.apiResult.textContent = `${res.status} ${res.statusText}\n${body}`;
    if (res.status === 401) {
      // The session may have ended meanwhile (e.g. back-channel logout).
      loadUser({ slide: false });
    }
  } catch (err) {
    el.apiResult.dataset.state = 'error';
    el.apiResult.dataset.status = '0';
    el.apiResult.textContent = `Request failed: ${err.message}`;
  } finally {
    el.callApi.disabled = false;
  }
}

// The live socket: the gateway closes it (1008 "session ended") when the
// session ends; the page shows the close code it got.
let socket = null;
let sent = 0;

function openSocket() {
  const url = new URL(basePath + 'api/ws', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  socket = new WebSocket(url);
  el.socketOpen.disabled = true;
  el.socketState.dataset.state = 'connecting';
  delete el.socketState.dataset.code;
  el.socketState.textContent = 'Connecting…';
  socket.addEventListener('open', () => {
    el.socketState.dataset.state = 'open';
    el.socketState.textContent = 'Open.';
    el.socketSend.disabled = false;
  });
  socket.addEventListener('message', (ev) => {
    el.socketState.textContent = `Open. Echo: ${ev.data}`;
  });
  socket.addEventListener('close', (ev) => {
    el.socketState.dataset.state = 'closed';
    el.socketState.dataset.code = String(ev.code);
    el.socketState.textContent = `Closed: code ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}`;
    el.socketOpen.disabled = false;
    el.socketSend.disabled = true;
    socket = null;
  });
}

el.socketOpen.addEventListener('click', openSocket);
el.socketSend.addEventListener('click', () => {
  if (socket) socket.send(`message ${++sent}`);
});
el.login.addEventListener('click', () => login(basePath));
el.logout.addEventListener('click', () => logout());
el.callApi.addEventListener('click', callApi);
el.silentLogin.addEventListener('click', trySilentLogin);
el.refreshSessions.addEventListener('click', loadSessions);

// Coming back to the tab: refresh what it shows (the event stream already
// covers the session ending).
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') loadUser({ slide: false });
});

loadUser();
