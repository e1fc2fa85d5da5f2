package bff

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/session"
)

// userJSON is the signed-in browser's /bff/user answer, raw and decoded.
func (h *harness) userJSON(c *http.Client) (string, map[string]any) {
	h.t.Helper()
	resp := h.get(c, "/bff/user", "X-CSRF", "1")
	raw := body(h.t, resp)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("/bff/user = %d %s", resp.StatusCode, raw)
	}
	var user map[string]any
	if err := json.Unmarshal([]byte(raw), &user); err != nil {
		h.t.Fatal(err)
	}
	return raw, user
}

// TestUserHidesIdPSID: the browser never sees the IdP's sid. /bff/user
// leaves it out, logout_url carries a handle derived from the session,
// and the IdP's sid is no logout handle.
func TestUserHidesIdPSID(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	s := h.sessionOf(c)
	if s.SID == "" {
		t.Fatal("the test OP gave no sid")
	}
	raw, user := h.userJSON(c)
	if strings.Contains(raw, s.SID) {
		t.Errorf("/bff/user carries the IdP's sid: %s", raw)
	}
	if _, ok := user["sid"]; ok {
		t.Errorf("/bff/user has a sid member: %v", user["sid"])
	}
	logoutURL, _ := user["logout_url"].(string)
	u, err := url.Parse(logoutURL)
	if err != nil || u.Query().Get("sid") == "" {
		t.Fatalf("logout_url = %q, want one with a sid handle", logoutURL)
	}
	if resp := h.get(c, "/bff/logout?sid="+url.QueryEscape(s.SID)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("/bff/logout with the IdP's sid: %d, want 400 (not a logout handle)", resp.StatusCode)
	}
	if resp := h.get(c, "/bff/logout?sid="+url.QueryEscape(session.Hash(s.ID))); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("/bff/logout with the hashed session id (shown in logs and the admin list): %d, want 400", resp.StatusCode)
	}
	if !h.signedIn(c) {
		t.Fatal("a refused logout ended the session")
	}
	if resp := h.get(c, logoutURL); resp.StatusCode != http.StatusFound {
		t.Errorf("logout through logout_url: %d, want 302", resp.StatusCode)
	}
	if h.signedIn(c) {
		t.Error("the session survived logout_url")
	}
}

// TestSessionStateNotSID: an IdP whose session_state is its sid (Keycloak
// does this) does not leak the sid through session_state.
func TestSessionStateNotSID(t *testing.T) {
	s := &session.Session{ID: "id-1", SID: "idp-sid", SessionState: "idp-sid"}
	if got := sessionState(s); got == s.SID {
		t.Errorf("session_state = the IdP's sid %q", got)
	}
	s.SessionState = "opaque"
	if got := sessionState(s); got != "opaque" {
		t.Errorf("session_state = %q, want the IdP's %q", got, "opaque")
	}
}

// TestFrontchannelCookieOnlyNeedsFrame: the cookie-only front-channel
// form ends the session only for a frame load; a top-level cross-site
// navigation (Sec-Fetch-Dest: document) or a request without fetch
// metadata gets 400 and the session lives.
func TestFrontchannelCookieOnlyNeedsFrame(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		name    string
		headers []string
		want    int
	}{
		{"top-level navigation", []string{"Sec-Fetch-Dest", "document", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"}, 400},
		{"image", []string{"Sec-Fetch-Dest", "image"}, 400},
		{"no fetch metadata", nil, 400},
		{"iframe", []string{"Sec-Fetch-Dest", "iframe", "Sec-Fetch-Site", "cross-site"}, 200},
		{"frame", []string{"Sec-Fetch-Dest", "frame"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.login("/")
			resp := h.get(c, "/bff/frontchannel-logout", tt.headers...)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if got, want := h.signedIn(c), tt.want != 200; got != want {
				t.Errorf("signed in after = %v, want %v", got, want)
			}
		})
	}
}

// tempEntries lists dir.
func tempEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestLogoutBody: POST /bff/logout takes a small urlencoded form only. A
// multipart body gets 415 and a large form 413, the session lives, and
// no file is left in the temp folder.
func TestLogoutBody(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // os.TempDir, where multipart parts spill
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	_, user := h.userJSON(c)
	lu, _ := url.Parse(user["logout_url"].(string))
	handle := lu.Query().Get("sid")

	// A 40 MB file part: more than net/http keeps in memory.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("sid", handle)
	fw, _ := mw.CreateFormFile("f", "big.bin")
	io.Copy(fw, io.LimitReader(zeros{}, 40<<20))
	mw.Close()

	post := func(ct string, b []byte) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/bff/logout", bytes.NewReader(b))
		req.Header.Set("Content-Type", ct)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(mw.FormDataContentType(), mp.Bytes()); got != http.StatusUnsupportedMediaType {
		t.Errorf("multipart logout: %d, want 415", got)
	}
	if left := tempEntries(t, tmp); len(left) > 0 {
		t.Errorf("temp folder holds %v after a multipart logout, want nothing", left)
	}
	big := "sid=" + url.QueryEscape(handle) + "&pad=" + strings.Repeat("a", 64<<10)
	if got := post("application/x-www-form-urlencoded", []byte(big)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("64 KiB form: %d, want 413", got)
	}
	if got := post("text/plain", []byte("sid="+handle)); got != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain logout: %d, want 415", got)
	}
	if !h.signedIn(c) {
		t.Fatal("a refused logout ended the session")
	}
	if got := post("application/x-www-form-urlencoded", []byte("sid="+url.QueryEscape(handle))); got != http.StatusFound {
		t.Errorf("small form logout: %d, want 302", got)
	}
	if h.signedIn(c) {
		t.Error("the session survived the form logout")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// logoutURL is the logout_url /bff/user gives a signed-in browser.
func (h *harness) logoutURL(c *http.Client) string {
	h.t.Helper()
	_, user := h.userJSON(c)
	u, _ := user["logout_url"].(string)
	if u == "" {
		h.t.Fatalf("/bff/user has no logout_url: %v", user)
	}
	return u
}

// TestAdminRevokeBodyCap: the admin revoke body is capped at 16 KiB
// (413), and identifiers over 255 bytes are refused (400).
func TestAdminRevokeBodyCap(t *testing.T) {
	_, admin := adminHarness(t)
	big := `{"sid":"` + strings.Repeat("a", 20<<10) + `"}`
	if resp, out := adminDo(t, http.MethodPost, admin.URL+"/admin/sessions/revoke", adminToken, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("20 KiB body: %d %v, want 413", resp.StatusCode, out)
	}
	long := `{"sid":"` + strings.Repeat("a", 256) + `"}`
	if resp, out := adminDo(t, http.MethodPost, admin.URL+"/admin/sessions/revoke", adminToken, long); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("256-byte sid: %d %v, want 400", resp.StatusCode, out)
	}
}
