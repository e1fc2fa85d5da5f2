package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAdminRevokeSignsOutTab (issue 8): with the SPA open, an operator
// ends the user's sessions through the admin API (what `curl -X POST
// -d '{"app":"demo","sub":"alice"}' …/admin/sessions/revoke` does), and
// the tab switches to "Signed out" by itself with the cause "admin", says
// an administrator ended the session and clears the API result it showed
// (issue 14). Login then signs straight back in through the IdP's single
// sign-on, without its login page.
func TestAdminRevokeSignsOutTab(t *testing.T) {
	s := startStack(t)
	b := newBrowser(t)
	tab := b.newTab()
	net := tab.recordNetwork()
	tab.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tab.waitEventStream(net, "/")
	tab.click("#call-api")
	tab.waitJS("wait for #api-result 200", `document.querySelector('#api-result').dataset.status === '200'`)

	admin := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, s.adminURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := admin(http.MethodGet, "/admin/sessions?sub=alice", ""); code != http.StatusOK || out["count"] != float64(1) {
		t.Fatalf("list: %d %v, want alice's one session", code, out)
	}
	if code, out := admin(http.MethodPost, "/admin/sessions/revoke", `{"app":"demo","sub":"alice"}`); code != http.StatusOK || out["ended"] != float64(1) {
		t.Fatalf("revoke: %d %v, want 1 ended", code, out)
	}
	tab.waitAppState("signed-out")
	var cause string
	_ = json.Unmarshal(tab.eval("#status cause", `document.querySelector('#status').dataset.cause || ''`), &cause)
	if cause != "admin" {
		t.Errorf("#status data-cause = %q, want admin", cause)
	}
	var reason string
	_ = json.Unmarshal(tab.eval("#signed-out-reason", `document.querySelector('#signed-out-reason')?.textContent || ''`), &reason)
	if !strings.Contains(reason, "administrator") {
		t.Errorf("#signed-out-reason = %q, want it to say an administrator ended the session", reason)
	}
	var api struct{ State, Status, Text string }
	_ = json.Unmarshal(tab.eval("#api-result", `(() => { const r = document.querySelector('#api-result');
  return {state: r.dataset.state, status: r.dataset.status || '', text: r.textContent}; })()`), &api)
	if api.State != "idle" || api.Status != "" || strings.Contains(api.Text, "hello") {
		t.Errorf("#api-result after the pushed sign-out: data-state %q, data-status %q, text %q; want the old result cleared", api.State, api.Status, api.Text)
	}
	if code, _ := admin(http.MethodGet, "/admin/sessions?sub=alice", ""); code != http.StatusOK {
		t.Errorf("list after revoke: %d", code)
	}
	// The IdP's session lives on: Login needs no password.
	tab.loginToApp(s.gwURL+"/", "alice", "", true)
}
