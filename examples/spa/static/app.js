// bffgate demo SPA. No framework, no inline script (CSP: script-src 'self').
// Everything it knows about the user comes from the gateway's /bff/user; the
// tokens never reach the browser.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  const el = {
    status: $('status'),
    user: $('user'),
    signedOutText: $('signed-out-text'),
    name: $('user-name'),
    sub: $('user-sub'),
    email: $('user-email'),
    expires: $('user-expires'),
    login: $('login'),
    logout: $('logout'),
    callApi: $('call-api'),
    apiResult: $('api-result'),
  };

  // The gateway's endpoints are relative to the app's path prefix, which is
  // the directory this page was served from ("/" or e.g. "/app2/").
  const base = new URL('.', window.location.href);
  const url = (path) => new URL(path, base).toString();
  const basePath = base.pathname;

  let logoutUrl = null;

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text;
  }

  function showSignedOut() {
    logoutUrl = null;
    setStatus('signed-out', 'Signed out');
    el.user.hidden = true;
    el.signedOutText.hidden = false;
    el.login.hidden = false;
    el.logout.hidden = true;
  }

  function formatSeconds(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '—';
    const m = Math.floor(s / 60);
    return m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
  }

  function showUser(user) {
    logoutUrl = user.logout_url || null;
    setStatus('signed-in', `Signed in as ${user.name || user.preferred_username || user.sub}`);
    el.name.textContent = user.name || '—';
    el.sub.textContent = user.sub || '—';
    el.email.textContent = user.email || '—';
    el.expires.textContent = formatSeconds(user.session_expires_in);
    el.user.hidden = false;
    el.signedOutText.hidden = true;
    el.login.hidden = true;
    el.logout.hidden = false;
  }

  async function loadUser() {
    let res;
    try {
      res = await fetch(url('bff/user'), {
        headers: { 'X-CSRF': '1' },
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (err) {
      setStatus('error', 'Gateway unreachable');
      return;
    }
    if (res.status === 401) {
      showSignedOut();
      return;
    }
    if (!res.ok) {
      setStatus('error', `Error ${res.status}`);
      return;
    }
    showUser(await res.json());
  }

  async function callApi() {
    el.callApi.disabled = true;
    el.apiResult.dataset.state = 'loading';
    el.apiResult.textContent = 'Calling…';
    try {
      const res = await fetch(url('api/hello'), {
        headers: { 'X-CSRF': '1' },
        credentials: 'same-origin',
        cache: 'no-store',
      });
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
        loadUser();
      }
    } catch (err) {
      el.apiResult.dataset.state = 'error';
      el.apiResult.dataset.status = '0';
      el.apiResult.textContent = `Request failed: ${err.message}`;
    } finally {
      el.callApi.disabled = false;
    }
  }

  el.login.addEventListener('click', () => {
    window.location.assign(url(`bff/login?returnUrl=${encodeURIComponent(basePath)}`));
  });

  el.logout.addEventListener('click', () => {
    if (logoutUrl) window.location.assign(logoutUrl);
  });

  el.callApi.addEventListener('click', callApi);

  // Coming back to the tab: the session may have ended elsewhere.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') loadUser();
  });

  loadUser();
}());
