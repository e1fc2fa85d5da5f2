package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

const firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

// uaTransport sends a fixed User-Agent.
type uaTransport struct{ ua string }

func (u uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}

// loginWithUA signs in sub from a browser with that User-Agent.
func (h *harness) loginWithUA(sub, ua string) *http.Client {
	h.t.Helper()
	h.op.SetUser(sub, nil)
	c := h.login("/")
	c.Transport = uaTransport{ua}
	// Sign in again from this "browser": the first login had Go's agent.
	h.follow(c, "/bff/login?returnUrl=/")
	return c
}

type sessionList struct {
	Sessions []userSession `json:"sessions"`
}

func (h *harness) listSessions(c *http.Client) sessionList {
	h.t.Helper()
	resp := h.get(c, "/bff/sessions", "X-CSRF", "1")
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET /bff/sessions = %d %s", resp.StatusCode, body(h.t, resp))
	}
	var l sessionList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		h.t.Fatal(err)
	}
	return l
}

// endSession posts {"handle": handle} to /bff/sessions/end.
func (h *harness) endSession(c *http.Client, contentType, payload string, headers ...string) *http.Response {
	h.t.Helper()
	return h.do(c, http.MethodPost, "/bff/sessions/end", strings.NewReader(payload), append([]string{"Content-Type", contentType}, headers...)...)
}

func handleJSON(handle string) string {
	b, _ := json.Marshal(endRequest{Handle: handle})
	return string(b)
}

func (l sessionList) other() userSession {
	for _, s := range l.Sessions {
		if !s.Current {
			return s
		}
	}
	return userSession{}
}

// testRedisClient starts a redis-server of the test's own (skipped
// without one, a failure under CI=true) and returns a client to it.
func testRedisClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	srv := storetest.RedisForTest(t)
	rdb, err := session.NewRedisClient(session.Config{RedisURL: srv.URL(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// forStores runs f with the memory store and with a real Redis.
func forStores(t *testing.T, f func(t *testing.T, o harnessOpts)) {
	t.Run("memory", func(t *testing.T) { f(t, harnessOpts{}) })
	t.Run("redis", func(t *testing.T) {
		rdb := testRedisClient(t)
		rs, err := session.NewRedisStore(rdb, session.RedisConfig{
			Secret: testSecret, Timeouts: session.Timeouts{Idle: 30 * time.Minute, Absolute: 8 * time.Hour},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		f(t, harnessOpts{wrapStore: func(session.Store) session.Store { return rs }})
	})
}

func TestUserSessionsList(t *testing.T) { forStores(t, testUserSessionsList) }

func testUserSessionsList(t *testing.T, o harnessOpts) {
	h := newHarness(t, o)
	a := h.loginWithUA("alice", firefoxUA)
	b := h.loginWithUA("alice", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	h.loginWithUA("bob", firefoxUA)

	if resp := h.get(a, "/bff/sessions"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without X-CSRF: %d, want 401", resp.StatusCode)
	}
	if resp := h.get(h.browser(), "/bff/sessions", "X-CSRF", "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", resp.StatusCode)
	}
	l := h.listSessions(a)
	if len(l.Sessions) != 2 {
		t.Fatalf("alice's list has %d sessions, want 2 (her two browsers, not bob's): %+v", len(l.Sessions), l)
	}
	sa, sb := h.sessionOf(a), h.sessionOf(b)
	cur, other := l.Sessions[0], l.Sessions[1]
	if !cur.Current {
		cur, other = other, cur
	}
	if !cur.Current || other.Current {
		t.Fatalf("current flags: %+v, want exactly one current", l.Sessions)
	}
	if cur.Browser != "Firefox 128 on Linux" || other.Browser != "Chrome 131 on Linux" {
		t.Errorf("browsers: current %q, other %q; want Firefox 128 on Linux, Chrome 131 on Linux", cur.Browser, other.Browser)
	}
	if cur.Address != "127.0.0.1" {
		t.Errorf("address = %q, want 127.0.0.1", cur.Address)
	}
	if cur.Created.IsZero() || cur.LastSeen.Before(cur.Created) {
		t.Errorf("times: created %v, last seen %v", cur.Created, cur.LastSeen)
	}
	// A handle is neither the session id nor anything shown elsewhere.
	for _, s := range []*session.Session{sa, sb} {
		for _, e := range l.Sessions {
			if strings.Contains(e.Handle, s.ID) || e.Handle == session.Hash(s.ID) || e.Handle == h.gw.logout.Handle(s) || len(e.Handle) != 22 {
				t.Errorf("handle %q relates to the session id or another handle", e.Handle)
			}
		}
	}
	if cur.Handle == other.Handle {
		t.Error("two sessions share a handle")
	}
	// The other browser sees the same sessions with its own current one.
	lb := h.listSessions(b)
	if len(lb.Sessions) != 2 || lb.other().Handle != cur.Handle {
		t.Errorf("the other browser's list %+v, want the same two with the first as the other one", lb)
	}
}

// TestUserEndsOwnSession: ending another of one's sessions does what a
// sign-out does: the session is gone, its open event stream gets the
// logout with cause user, its refresh token is revoked, the metric counts
// cause user; the session that ended it stays.
func TestUserEndsOwnSession(t *testing.T) { forStores(t, testUserEndsOwnSession) }

func testUserEndsOwnSession(t *testing.T, o harnessOpts) {
	h := newHarness(t, o)
	ended := &storetest.EndLog{}
	h.mgr.Observe(ended)
	a := h.loginWithUA("alice", firefoxUA)
	b := h.loginWithUA("alice", firefoxUA)
	victim := h.sessionOf(b)
	_, lines := h.openEvents(b)
	waitLine(t, lines, ": connected", 5*time.Second)

	target := h.listSessions(a).other()
	resp := h.endSession(a, "application/json", handleJSON(target.Handle), "X-CSRF", "1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("end = %d %s, want 200", resp.StatusCode, body(t, resp))
	}
	var out map[string]bool
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if !out["ended"] || out["current"] {
		t.Errorf("answer %v, want ended and not current", out)
	}
	waitLine(t, lines, "event: logout", 5*time.Second)
	if data, _ := waitLine(t, lines, "data:", 5*time.Second); !strings.Contains(data, `"cause":"user"`) {
		t.Errorf("logout event data %q, want cause user", data)
	}
	if h.signedIn(b) {
		t.Error("the ended session still works")
	}
	if !h.signedIn(a) {
		t.Error("the session that ended the other one is gone too")
	}
	if got := ended.Lines(); !slices.Contains(got, "user "+victim.ID) {
		t.Errorf("observers told %q, want user %s", got, victim.ID)
	}
	if got, _ := metricValue(t, h.gw.registry, "bffgate_sessions_ended_total", map[string]string{"app": "demo", "cause": "user"}); got != 1 {
		t.Errorf(`bffgate_sessions_ended_total{cause="user"} = %v, want 1`, got)
	}
	waitFor(t, "the ended session's refresh token revoked at the IdP", func() bool {
		return slices.Contains(h.op.Revoked(), victim.RefreshToken)
	})
	// Once gone, its handle names nothing.
	if resp := h.endSession(a, "application/json", handleJSON(target.Handle), "X-CSRF", "1"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ending it again = %d, want 404", resp.StatusCode)
	}
	if l := h.listSessions(a); len(l.Sessions) != 1 || !l.Sessions[0].Current {
		t.Errorf("list after the end: %+v, want only the current one", l)
	}

	// Ending the current session signs this browser out here.
	cur := h.listSessions(a).Sessions[0]
	resp = h.endSession(a, "application/json", handleJSON(cur.Handle), "X-CSRF", "1")
	out = nil
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK || !out["current"] || h.signedIn(a) {
		t.Errorf("ending the current session: %d %v, signed in %v; want 200, current, signed out", resp.StatusCode, out, h.signedIn(a))
	}
}

// TestUserCannotEndOthersSession: a handle of another user's session is
// answered exactly like an unknown handle (404, no oracle), and that
// session lives on.
func TestUserCannotEndOthersSession(t *testing.T) { forStores(t, testUserCannotEndOthersSession) }

func testUserCannotEndOthersSession(t *testing.T, o harnessOpts) {
	h := newHarness(t, o)
	bob := h.loginWithUA("bob", firefoxUA)
	bobsHandle := h.listSessions(bob).Sessions[0].Handle
	alice := h.loginWithUA("alice", firefoxUA)

	answer := func(handle string) (int, string) {
		resp := h.endSession(alice, "application/json", handleJSON(handle), "X-CSRF", "1")
		var e errorBody
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error + " " + e.Description
	}
	codeOther, bodyOther := answer(bobsHandle)
	codeUnknown, bodyUnknown := answer("AAAAAAAAAAAAAAAAAAAAAA")
	if codeOther != http.StatusNotFound || codeOther != codeUnknown || bodyOther != bodyUnknown {
		t.Errorf("another user's handle: %d %q; unknown handle: %d %q; want the same 404", codeOther, bodyOther, codeUnknown, bodyUnknown)
	}
	if !h.signedIn(bob) {
		t.Error("alice ended bob's session")
	}
	if got, _ := metricValue(t, h.gw.registry, "bffgate_sessions_ended_total", map[string]string{"app": "demo", "cause": "user"}); got != 0 {
		t.Errorf(`bffgate_sessions_ended_total{cause="user"} = %v, want 0`, got)
	}
}

func TestUserSessionsEndRequests(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.loginWithUA("alice", firefoxUA)
	handle := h.listSessions(c).Sessions[0].Handle
	tests := []struct {
		name, contentType, payload string
		headers                    []string
		want                       int
	}{
		{"no X-CSRF", "application/json", handleJSON(handle), nil, http.StatusUnauthorized},
		{"a form", "application/x-www-form-urlencoded", "handle=" + handle, []string{"X-CSRF", "1"}, http.StatusUnsupportedMediaType},
		{"too large", "application/json", `{"handle":"` + strings.Repeat("A", 2000) + `"}`, []string{"X-CSRF", "1"}, http.StatusRequestEntityTooLarge},
		{"not JSON", "application/json", "handle", []string{"X-CSRF", "1"}, http.StatusBadRequest},
		{"no handle", "application/json", `{}`, []string{"X-CSRF", "1"}, http.StatusBadRequest},
		{"long handle", "application/json", handleJSON(strings.Repeat("A", 100)), []string{"X-CSRF", "1"}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		if resp := h.endSession(c, tt.contentType, tt.payload, tt.headers...); resp.StatusCode != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
	if resp := h.endSession(h.browser(), "application/json", handleJSON(handle), "X-CSRF", "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", resp.StatusCode)
	}
	if !h.signedIn(c) {
		t.Error("a refused request ended the session")
	}
}

// TestUserSessionsCapped: the list holds at most maxUserSessions, the
// newest, and always the current one.
func TestUserSessionsCapped(t *testing.T) { forStores(t, testUserSessionsCapped) }

func testUserSessionsCapped(t *testing.T, o harnessOpts) {
	h := newHarness(t, o)
	c := h.loginWithUA("alice", firefoxUA)
	cur := h.sessionOf(c)
	for i := range maxUserSessions + 10 {
		s := &session.Session{ID: session.NewID(), App: "demo", Issuer: cur.Issuer, Subject: cur.Subject,
			CreatedAt: time.Now().Add(time.Duration(i+1) * time.Second)}
		if err := h.mgr.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	l := h.listSessions(c)
	if len(l.Sessions) != maxUserSessions {
		t.Errorf("list has %d sessions, want %d", len(l.Sessions), maxUserSessions)
	}
	if !slices.ContainsFunc(l.Sessions, func(s userSession) bool { return s.Current }) {
		t.Error("the current session (the oldest) is not in the capped list")
	}
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(l)
	if strings.Contains(b.String(), cur.ID) {
		t.Error("the list contains the session id")
	}
}
