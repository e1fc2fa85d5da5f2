// A session monitor on the gateway's check-session iframe (Session
// Management 1.0 §3.1, the RP side, against bffgate's own session): the
// page posts client_id + " " + session_state to bff/check-session every
// interval and records each answer. "changed" ends the monitor: no polling
// is left running. "error" (a malformed message) is recorded and nothing
// else happens (§3.1: never re-authenticate on "error").
const params = new URLSearchParams(window.location.search);
const clientId = params.get('client_id') || 'demo';
const interval = Math.max(100, Number(params.get('interval')) || 2000);
const base = new URL('.', window.location.href);

const $ = (id) => document.getElementById(id);
const monitor = $('monitor');
const answers = $('answers');

let timer = null;
let polls = 0;
let frame = null;

function setState(state, text) {
  monitor.dataset.state = state;
  monitor.textContent = text;
}

function record(answer) {
  const li = document.createElement('li');
  li.textContent = answer;
  li.dataset.answer = answer;
  answers.appendChild(li);
  $('last-answer').textContent = answer;
  monitor.dataset.last = answer;
}

function stop(state, text) {
  if (timer !== null) {
    clearInterval(timer);
    timer = null;
  }
  setState(state, text);
}

function post(message) {
  frame.contentWindow.postMessage(message, window.location.origin);
}

async function sessionState() {
  const res = await fetch(new URL('bff/user?slide=false', base), {
    headers: { 'X-CSRF': '1' },
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (res.status === 401) return null;
  if (!res.ok) throw new Error(`bff/user answered ${res.status}`);
  const user = await res.json();
  return user.session_state;
}

async function start() {
  $('client-id').textContent = clientId;
  let state;
  try {
    state = await sessionState();
  } catch (err) {
    setState('error', err.message);
    return;
  }
  if (!state) {
    setState('signed-out', 'Not signed in');
    return;
  }
  $('session-state').textContent = state;

  window.addEventListener('message', (e) => {
    // Only the check-session iframe's answers (Session Management §3.1).
    if (e.origin !== window.location.origin || !frame || e.source !== frame.contentWindow) return;
    if (typeof e.data !== 'string') return;
    record(e.data);
    if (e.data === 'changed') stop('changed', 'Session changed: polling stopped');
  });

  frame = document.createElement('iframe');
  frame.id = 'check-session';
  frame.title = 'check session';
  frame.hidden = true;
  frame.addEventListener('load', () => {
    setState('polling', `Polling every ${interval} ms`);
    const tick = () => {
      polls += 1;
      $('polls').textContent = String(polls);
      post(`${clientId} ${state}`);
    };
    tick();
    timer = setInterval(tick, interval);
  }, { once: true });
  frame.src = new URL('bff/check-session', base).toString();
  document.body.appendChild(frame);

  $('probe-malformed').addEventListener('click', () => {
    if (frame) post('malformed-no-space');
  });
}

start();
