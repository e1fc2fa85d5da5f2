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
// the tab switches to "Signed out" by itself with the cause "admin".
func TestAdminRevokeSignsOutTab(t *testing.T) {
	s := startStack(t)
	b := newBrowser(t)
	tab := b.newTab()
	net := tab.recordNetwork()
	tab.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tab.waitEventStream(net, "/")

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
	if code, _ := admin(http.MethodGet, "/admin/sessions?sub=alice", ""); code != http.StatusOK {
		t.Errorf("list after revoke: %d", code)
	}
}
