package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// openSocket clicks the SPA's "Open socket", waits until it is open, and
// has the page note when it closes, by the browser's clock.
func (tb *tab) openSocket() {
	tb.t.Helper()
	tb.click("#socket-open")
	tb.waitJS("wait for the socket to open", `document.querySelector('#socket-state').dataset.state === 'open'`)
	tb.eval("watch #socket-state", `(() => {
  const s = document.querySelector('#socket-state');
  window.__socketClosedAt = 0;
  new MutationObserver(() => {
    if (s.dataset.state === 'closed' && !window.__socketClosedAt) window.__socketClosedAt = Date.now();
  }).observe(s, {attributes: true, attributeFilter: ['data-state']});
  return true;
})()`)
}

// TestSignOutCutsSocket (issue 16, item 1): alice and bob, in two browser
// profiles, each have the demo SPA's WebSocket open through the gateway to
// the demo API's echo. Alice signs out at the IdP (through another
// client's end_session page); the IdP's back-channel logout ends her
// gateway session, and her socket is closed with code 1008 "session
// ended" within 1 s of the confirmation. Bob's socket stays open and
// echoes.
func TestSignOutCutsSocket(t *testing.T) {
	s := startStack(t)
	b1, b2 := newBrowser(t), newBrowser(t)
	alice, bob := b1.newTab(), b2.newTab()
	alice.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	bob.loginToApp(s.gwURL+"/", "bob", "builder", false)
	alice.openSocket()
	bob.openSocket()

	idp := b1.newTab()
	idp.navigate(s.idpSignOutURL())
	confirmedAt := idp.confirmIdPSignOut()

	alice.waitJS("wait for alice's socket to close", `document.querySelector('#socket-state').dataset.state === 'closed'`)
	var closedAt int64
	if err := json.Unmarshal(alice.eval("__socketClosedAt", `window.__socketClosedAt`), &closedAt); err != nil || closedAt == 0 {
		t.Fatalf("no time of the socket's close (%v)", err)
	}
	took := time.Duration(closedAt-confirmedAt) * time.Millisecond
	t.Logf("alice's socket closed %v after the confirmation at the IdP", took)
	if took > time.Second {
		t.Errorf("alice's socket closed %v after the IdP's confirmation, want within 1s", took)
	}
	var code string
	_ = json.Unmarshal(alice.eval("close code", `document.querySelector('#socket-state').dataset.code`), &code)
	if code != "1008" {
		t.Errorf("alice's socket closed with code %s, want 1008 (%s)", code, alice.text("#socket-state"))
	}
	if txt := alice.text("#socket-state"); !strings.Contains(txt, "session ended") {
		t.Errorf("#socket-state = %q, want the reason \"session ended\"", txt)
	}

	// Bob's socket is untouched: it still echoes.
	bob.click("#socket-send")
	bob.waitJS("wait for bob's echo", `document.querySelector('#socket-state').textContent.includes('Echo: message 1')`)
	var state string
	_ = json.Unmarshal(bob.eval("bob's socket", `document.querySelector('#socket-state').dataset.state`), &state)
	if state != "open" {
		t.Errorf("bob's socket is %q, want open", state)
	}
	if n := s.waitMetric(1, "bffgate_proxied_connections_cut_total", `kind="websocket"`); n != 1 {
		t.Errorf(`bffgate_proxied_connections_cut_total{kind="websocket"} = %v, want 1`, n)
	}
}
