package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestLoginAndAPI: sign in through the IdP's login page, see the user in the
// SPA, and call the API through the gateway, which attaches the access token
// that the API validates by introspection.
func TestLoginAndAPI(t *testing.T) {
	s := startStack(t)
	tb := newBrowser(t).newTab()

	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	if name := tb.text("#user-name"); name != "Alice Liddell" {
		t.Errorf("#user-name = %q, want Alice Liddell", name)
	}

	tb.click("#call-api")
	tb.waitJS("wait for #api-result", `document.querySelector('#api-result').dataset.status !== undefined`)
	status := tb.eval("#api-result status", `document.querySelector('#api-result').dataset.status`)
	result := tb.text("#api-result")
	if string(status) != `"200"` {
		t.Fatalf("#api-result data-status = %s, want 200; result:\n%s", status, result)
	}
	// The text is the status line, then the JSON body.
	_, body, _ := strings.Cut(result, "\n")
	var got struct {
		Sub      string `json:"sub"`
		Name     string `json:"name"`
		ClientID string `json:"client_id"`
		TokenOK  bool   `json:"token_ok"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("#api-result body is not JSON: %v\n%s", err, result)
	}
	if !got.TokenOK || got.Sub != "alice" || got.ClientID != "demo" {
		t.Errorf("API result = %+v, want token_ok, sub alice, client_id demo", got)
	}
	if n := len(s.apiRequests("/api/hello")); n != 1 {
		t.Errorf("the API logged %d requests to /api/hello, want 1", n)
	}
}
