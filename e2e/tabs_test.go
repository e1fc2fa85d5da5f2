package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// TestIdPLogoutTwoTabs (issue 5, scenario 2): the SPA is open in two tabs of
// one browser profile, each watching the session with the gateway's
// client.js (SSE /bff/events plus a BroadcastChannel). The user signs out at
// the IdP through another client's end_session page ("Yes, everywhere");
// the IdP's back-channel logout ends the gateway session, and both tabs
// switch to "Signed out" by themselves within 1 s of the confirmation. The
// next API call is 401.
func TestIdPLogoutTwoTabs(t *testing.T) {
	s := startStack(t)
	b := newBrowser(t)

	tab1 := b.newTab()
	net1 := tab1.recordNetwork()
	tab1.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tab1.waitEventStream(net1, "/")

	tab2 := b.newTab()
	net2 := tab2.recordNetwork()
	if st := tab2.openApp(s.gwURL + "/"); st != "signed-in" {
		t.Fatalf("tab 2 shows %q, want signed-in (same browser profile)", st)
	}
	tab2.waitEventStream(net2, "/")

	// Each tab notes when its #status turns signed-out, by the browser's
	// clock (shared by all tabs).
	for _, tb := range []*tab{tab1, tab2} {
		tb.eval("watch #status", `(() => {
  const s = document.querySelector('#status');
  window.__signedOutAt = 0;
  new MutationObserver(() => {
    if (s.dataset.state === 'signed-out' && !window.__signedOutAt) window.__signedOutAt = Date.now();
  }).observe(s, {attributes: true, attributeFilter: ['data-state']});
  return true;
})()`)
	}

	// A third tab signs out at the IdP through client "other".
	idp := b.newTab()
	idp.navigate(s.idpSignOutURL())
	confirmedAt := idp.confirmIdPSignOut()
	idp.waitVisible("#other-signed-out")

	for _, tb := range []*tab{tab1, tab2} {
		tb.waitAppState("signed-out")
		var at int64
		if err := json.Unmarshal(tb.eval("__signedOutAt", `window.__signedOutAt`), &at); err != nil || at == 0 {
			t.Fatalf("%s: no time of the change to signed-out (%v)", tb.name, err)
		}
		took := time.Duration(at-confirmedAt) * time.Millisecond
		t.Logf("%s: signed out %v after the confirmation at the IdP", tb.name, took)
		if took > time.Second {
			t.Errorf("%s switched to signed-out %v after the IdP's confirmation, want within 1s", tb.name, took)
		}
		var cause string
		_ = json.Unmarshal(tb.eval("#status cause", `document.querySelector('#status').dataset.cause || ''`), &cause)
		if cause != "backchannel" {
			t.Errorf("%s: #status data-cause = %q, want backchannel (the SSE logout event's cause)", tb.name, cause)
		}
		if txt := tb.text("#status"); txt != "Signed out" {
			t.Errorf("%s: #status = %q, want Signed out", tb.name, txt)
		}
	}
	if got := s.idpEvents("backchannel.success", map[string]string{"client_id": "demo", "sub": "alice"}); len(got) != 1 {
		t.Errorf("IdP logged %d backchannel.success for demo, want 1; errors: %v", len(got), s.idpEvents("backchannel.error", nil))
	}

	// The next API call, from the page's own button, is 401.
	tab2.click("#call-api")
	tab2.waitJS("wait for #api-result", `document.querySelector('#api-result').dataset.status !== undefined`)
	var status string
	_ = json.Unmarshal(tab2.eval("#api-result status", `document.querySelector('#api-result').dataset.status`), &status)
	if status != "401" {
		t.Errorf("#call-api after the IdP logout: data-status = %s, want 401\n%s", status, tab2.text("#api-result"))
	}
	if r := tab1.fetch("/api/hello"); r.Status != 401 {
		t.Errorf("/api/hello after the IdP logout = %d %s, want 401", r.Status, r.Body)
	}
}
