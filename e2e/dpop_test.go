package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/dpop"
)

// TestDPoPAPI (issue 17, item 3): with dpop = true and oidc-provider 9
// (features.dPoP, nonces required), the gateway's code exchange and
// refresh carry proofs of the session's key, so the IdP binds the tokens;
// the demo API, which introspects the token (cnf.jkt) and checks the
// proof (signature, htm, htu, iat, ath, jti replay, the key), answers the
// calls the gateway makes from Chromium. The same access token, taken
// from another API of the app, is refused by the demo API without the
// session's key: as a bearer, with the proof it came with (another URL,
// a used jti), and with a proof of another key.
func TestDPoPAPI(t *testing.T) {
	rec := newHeaderRecorder(t)
	app := appDemo
	app.settings = "dpop = true"
	app.downstream = "\n  [[apps.apis]]\n  path = \"/rec/\"\n  upstream = \"" + rec.URL + "\"\n"
	s := startStackWith(t, stackOptions{idpEnv: []string{"DPOP_REQUIRE_NONCE=1", "ACCESS_TOKEN_TTL=6"}}, app)

	tb := newBrowser(t).newTab()
	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	if r := tb.fetch("/api/hello"); r.Status != 200 || !strings.Contains(r.Body, `"dpop":true`) {
		t.Fatalf("GET /api/hello = %d %s, want 200 with a DPoP-bound token", r.Status, r.Body)
	}
	// The nonce the IdP demands was learnt with one retry.
	if n := len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "path": "/token", "status": "400"})); n != 1 {
		t.Errorf("the IdP answered %d token requests with 400 (use_dpop_nonce), want 1", n)
	}

	tok, h := rec.dpopCallVia(t, tb)
	thief, _ := dpop.NewKey()
	hello, _ := url.Parse(s.apiURL + "/api/hello")
	own, _ := thief.Proof("GET", hello, tok, "", time.Now())
	for _, c := range []struct{ name, auth, proof string }{
		{"as a bearer", "Bearer " + tok, ""},
		{"without a proof", "DPoP " + tok, ""},
		{"with the proof it came with", "DPoP " + tok, h.Get("DPoP")},
		{"with a proof of another key", "DPoP " + tok, own},
	} {
		req, _ := http.NewRequest("GET", hello.String(), nil)
		req.Header.Set("Authorization", c.auth)
		if c.proof != "" {
			req.Header.Set("DPoP", c.proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the stolen token %s: %d, want 401", c.name, resp.StatusCode)
		}
	}

	// After the access token expires, the refresh carries a proof too
	// and the API still accepts the new bound token.
	tokens := func() int {
		return len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "path": "/token", "status": "200"}))
	}
	before := tokens()
	deadline := time.Now().Add(20 * time.Second)
	for tokens() == before {
		if time.Now().After(deadline) {
			t.Fatal("no refresh within 20s of calls")
		}
		if r := tb.fetch("/api/hello"); r.Status != 200 || !strings.Contains(r.Body, `"dpop":true`) {
			t.Fatalf("GET /api/hello = %d %s, want 200 with a DPoP-bound token", r.Status, r.Body)
		}
		time.Sleep(250 * time.Millisecond) // the calls are the poll: the token's lifetime is the wait
	}
	if r := tb.fetch("/api/hello"); r.Status != 200 || !strings.Contains(r.Body, `"dpop":true`) {
		t.Fatalf("after the refresh GET /api/hello = %d %s, want 200 with a DPoP-bound token", r.Status, r.Body)
	}
}

// headerRecorder is an upstream API that keeps the headers of the last
// request it got (what the gateway sent: the Authorization scheme, the
// DPoP proof).
type headerRecorder struct {
	*httptest.Server
	mu       sync.Mutex
	captured http.Header
}

func newHeaderRecorder(t *testing.T) *headerRecorder {
	t.Helper()
	rec := &headerRecorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.captured = r.Header.Clone()
		rec.mu.Unlock()
	}))
	t.Cleanup(rec.Close)
	return rec
}

// last returns the headers of the last request (nil before the first).
func (rec *headerRecorder) last() http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.captured
}

// dpopCallVia calls the recorder's API path (/rec/x) from tb's page and
// returns the access token and the headers the API got; the token must
// have come with the DPoP scheme and a proof.
func (rec *headerRecorder) dpopCallVia(t *testing.T, tb *tab) (string, http.Header) {
	t.Helper()
	if r := tb.fetch("/rec/x"); r.Status != 200 {
		t.Fatalf("GET /rec/x = %d %s", r.Status, r.Body)
	}
	h := rec.last()
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "DPoP ")
	if !ok || h.Get("DPoP") == "" {
		t.Fatalf("the API got Authorization %q and DPoP %q, want the DPoP scheme and a proof", h.Get("Authorization"), h.Get("DPoP"))
	}
	return tok, h
}
