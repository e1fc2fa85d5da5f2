package logout_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// failApp is a Sessions whose back-channel calls fail for one app while
// down is set, as a store would for that app's keys.
type failApp struct {
	logout.Sessions
	app  string
	down atomic.Bool
}

func (f *failApp) EndBySID(ctx context.Context, app, iss, sid, sub string, c session.Cause) ([]*session.Session, error) {
	if app == f.app && f.down.Load() {
		return nil, errDown
	}
	return f.Sessions.EndBySID(ctx, app, iss, sid, sub, c)
}

// twoApps is a Service with apps "a" and "b" verifying tokens of op with
// one shared replay cache (as the gateway has), each with a session for
// alice's sid-1.
type twoApps struct {
	svc      *logout.Service
	mgr      *session.Manager
	sessions *failApp
}

func newTwoApps(t *testing.T, op *testop.OP, clientA, clientB string, trustedA, trustedB []string) *twoApps {
	t.Helper()
	mgr := newManager(t, nil)
	ta := &twoApps{mgr: mgr, sessions: &failApp{Sessions: mgr, app: "b"}}
	ta.svc = newService(t, logout.ServiceConfig{}, ta.sessions, nil, nil)
	replay := logout.NewMemoryReplayCache()
	for _, c := range []struct {
		app, client string
		trusted     []string
	}{{"a", clientA, trustedA}, {"b", clientB, trustedB}} {
		v := newVerifier(t, op, func(cfg *logout.VerifierConfig) {
			cfg.ClientID, cfg.TrustedAudiences, cfg.Replay = c.client, c.trusted, replay
		})
		ta.svc.Register(&logout.Client{App: c.app, Issuer: op.URL, ClientID: c.client, Verifier: v})
		err := mgr.Create(context.Background(), &session.Session{ID: "s-" + c.app, App: c.app, Issuer: op.URL, Subject: "alice", SID: "sid-1"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ta
}

func (ta *twoApps) live(t *testing.T) []string { return liveOf(t, ta.mgr, "s-a", "s-b") }

// wantBothEnded delivers tok and checks that it ended the sessions of
// both apps; what names the delivery in failures.
func (ta *twoApps) wantBothEnded(t *testing.T, what, tok string) {
	t.Helper()
	rs, err := ta.svc.Backchannel(context.Background(), tok)
	if err != nil {
		t.Fatalf("%s: %v, want success", what, err)
	}
	if got := apps(rs); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("%s: results for apps %q, want [a b]", what, got)
	}
	if got := ta.live(t); len(got) != 0 {
		t.Errorf("%s: sessions left: %q, want none", what, got)
	}
}

func apps(rs []logout.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.App)
	}
	slices.Sort(out)
	return out
}

// TestBackchannelEndsEveryAddressedApp: one logout token ends the sessions
// of every app it addresses, whether the apps share a client_id or trust
// each other's as an audience; the replay check is made once per token.
func TestBackchannelEndsEveryAddressedApp(t *testing.T) {
	op := testop.New(t, testop.Config{})
	tests := []struct {
		name               string
		clientA, clientB   string
		trustedA, trustedB []string
		aud                []string
	}{
		{name: "same issuer and client_id", clientA: op.ClientID(), clientB: op.ClientID(), aud: []string{op.ClientID()}},
		{name: "overlapping trusted_audiences", clientA: "client-a", clientB: "client-b",
			trustedA: []string{"client-b"}, trustedB: []string{"client-a"}, aud: []string{"client-a", "client-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTwoApps(t, op, tt.clientA, tt.clientB, tt.trustedA, tt.trustedB)
			tok := op.Sign(op.LogoutToken(func(c map[string]any) { c["aud"] = tt.aud; c["sid"] = "sid-1" }), testop.SignOpts{})
			ta.wantBothEnded(t, "Backchannel", tok)
			for _, a := range []string{"a", "b"} {
				if got := testutil.ToFloat64(ta.svc.Metric().WithLabelValues(a, "rejected", logout.ReasonReplay, "")); got != 0 {
					t.Errorf("app %s counted %v replays of the first delivery, want 0", a, got)
				}
			}
			if _, err := ta.svc.Backchannel(context.Background(), tok); reason(err) != logout.ReasonReplay {
				t.Errorf("second delivery: %v, want reason replay", err)
			}
		})
	}
}

// TestBackchannelStoreFailureInOneAppAllowsRetry: when ending one app's
// sessions fails, the token gets a *StoreError (400 application_error)
// and its jti is not kept, so the IdP's retry ends every app's sessions.
func TestBackchannelStoreFailureInOneAppAllowsRetry(t *testing.T) {
	op := testop.New(t, testop.Config{})
	ta := newTwoApps(t, op, op.ClientID(), op.ClientID(), nil, nil)
	tok := op.Sign(op.LogoutToken(func(c map[string]any) { c["sid"] = "sid-1" }), testop.SignOpts{})
	ta.sessions.down.Store(true)
	var se *logout.StoreError
	if _, err := ta.svc.Backchannel(context.Background(), tok); !errors.As(err, &se) {
		t.Fatalf("Backchannel with app b's store down: %v, want a *StoreError", err)
	}
	ta.sessions.down.Store(false)
	ta.wantBothEnded(t, "retry after the store recovered", tok)
}
