package logout_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// TestRejectionNamesSwitch: a token that fails only on checks a
// documented switch relaxes names that switch (and the setting) in its
// ValidationError; one that would fail anyway names none.
func TestRejectionNamesSwitch(t *testing.T) {
	op := testop.New(t, testop.Config{})
	stranger := rpKeys().other
	requireTyp := func(c *logout.VerifierConfig) { c.RequireTyp = true }
	tests := []struct {
		name       string
		cfg        func(*logout.VerifierConfig)
		tok        minter
		wantReason string
		wantSwitch string
		wantFix    string
	}{
		{name: "no exp", tok: lt(del("exp"), testop.SignOpts{}),
			wantReason: "exp_missing", wantSwitch: "allow_missing_exp", wantFix: "allow_missing_exp = true"},
		{name: "no exp, bad signature", tok: lt(del("exp"), testop.SignOpts{Key: stranger}), wantReason: "signature"},
		{name: "no exp and no jti", tok: lt(del("exp", "jti"), testop.SignOpts{}), wantReason: "exp_missing"},
		{name: "exp not a number", tok: lt(set("exp", "soon"), testop.SignOpts{}), wantReason: "exp_missing"},
		{name: "typ JWT, logout+jwt required", cfg: requireTyp, tok: lt(nil, testop.SignOpts{Typ: "JWT"}),
			wantReason: "typ", wantSwitch: "logout_typ", wantFix: `logout_typ = "JWT"`},
		{name: "no typ, logout+jwt required", cfg: requireTyp, tok: lt(nil, testop.SignOpts{}),
			wantReason: "typ", wantSwitch: "require_logout_typ", wantFix: "require_logout_typ = false"},
		{name: "no typ, logout_typ set", cfg: func(c *logout.VerifierConfig) { c.ExpectedTyp = "JWT" }, tok: lt(nil, testop.SignOpts{}),
			wantReason: "typ", wantSwitch: "logout_typ", wantFix: "logout_typ unset (the IdP sends no typ)"},
		{name: "typ at+jwt names no switch", cfg: requireTyp, tok: lt(nil, testop.SignOpts{Typ: "at+jwt"}), wantReason: "typ"},
		{name: "typ JWT, bad signature", cfg: requireTyp, tok: lt(nil, testop.SignOpts{Typ: "JWT", Key: stranger}), wantReason: "typ"},
		{name: "no typ and no exp", cfg: requireTyp, tok: lt(del("exp"), testop.SignOpts{}),
			wantReason: "typ", wantSwitch: "require_logout_typ,allow_missing_exp", wantFix: "require_logout_typ = false; allow_missing_exp = true"},
		{name: "an untrusted audience", tok: lt(set("aud", []string{op.ClientID(), "api://other"}), testop.SignOpts{}),
			wantReason: "aud", wantSwitch: "trusted_audiences", wantFix: `trusted_audiences = ["api://other"]`},
		{name: "aud without the client", tok: lt(set("aud", []string{"api://other"}), testop.SignOpts{}), wantReason: "aud"},
		{name: "untrusted audience and a nonce", tok: lt(set("aud", []string{op.ClientID(), "x"}, "nonce", "n"), testop.SignOpts{}), wantReason: "aud"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, op, tt.cfg)
			_, err := v.Verify(context.Background(), tt.tok(op))
			var ve *logout.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a ValidationError", err)
			}
			if ve.Reason != tt.wantReason || ve.Switch != tt.wantSwitch || ve.Fix != tt.wantFix {
				t.Errorf("got reason %q switch %q fix %q, want %q %q %q", ve.Reason, ve.Switch, ve.Fix, tt.wantReason, tt.wantSwitch, tt.wantFix)
			}
		})
	}
}

// hintService is a Service with one app of op (sessions as newFixture's
// s1-s4 would need are made by the caller) logging to the returned buffer.
func hintService(t *testing.T, op *testop.OP, sidOnly bool) (*logout.Service, *session.Manager, *proctest.Buffer) {
	t.Helper()
	mgr := newManager(t, nil)
	logs := &proctest.Buffer{}
	svc := newService(t, logout.ServiceConfig{}, mgr, nil, slog.New(slog.NewTextHandler(logs, nil)))
	svc.Register(&logout.Client{App: app, Issuer: op.URL, ClientID: op.ClientID(), Verifier: newVerifier(t, op, nil), FrontchannelSIDOnly: sidOnly})
	return svc, mgr, logs
}

// TestRejectionHintLoggedOnce: repeated tokens rejected only for their
// missing exp, and repeated sid-only front-channel requests, each log
// the setting once (per app and check) and count it in the metric's
// switch label every time.
func TestRejectionHintLoggedOnce(t *testing.T) {
	op := testop.New(t, testop.Config{})
	svc, _, logs := hintService(t, op, false)
	ctx := context.Background()
	const n = 3
	for range n {
		if _, err := svc.Backchannel(ctx, op.Sign(op.LogoutToken(del("exp")), testop.SignOpts{})); reason(err) != "exp_missing" {
			t.Fatalf("got %v, want exp_missing", err)
		}
		if _, err := svc.FrontchannelSID(ctx, app, "sid-1"); reason(err) != logout.ReasonIssMissing {
			t.Fatalf("front-channel: got %v, want %s", err, logout.ReasonIssMissing)
		}
	}
	out := logs.String()
	if got := strings.Count(out, `fix="allow_missing_exp = true"`); got != 1 {
		t.Errorf("the log names allow_missing_exp = true %d times, want once:\n%s", got, out)
	}
	if got := strings.Count(out, `fix="frontchannel_sid_only = true"`); got != 1 {
		t.Errorf("the log names frontchannel_sid_only = true %d times, want once:\n%s", got, out)
	}
	if got := strings.Count(out, "event=logout_token_rejected"); got != n {
		t.Errorf("%d rejection lines, want %d", got, n)
	}
	if got := testutil.ToFloat64(svc.Metric().WithLabelValues(app, "rejected", "exp_missing", "allow_missing_exp")); got != n {
		t.Errorf("bffgate_logout_tokens_total{reason=exp_missing,switch=allow_missing_exp} = %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(svc.FrontchannelMetric().WithLabelValues(app, "rejected", "frontchannel_sid_only")); got != n {
		t.Errorf("bffgate_frontchannel_logouts_total{result=rejected,switch=frontchannel_sid_only} = %v, want %d", got, n)
	}
}

// TestFrontchannelSIDOnly: with frontchannel_sid_only a request with sid
// alone ends the app's sessions of (its issuer, sid); without it, it is
// refused and ends nothing; the identifier cap and the no-state rule for
// an unknown sid still hold.
func TestFrontchannelSIDOnly(t *testing.T) {
	op := testop.New(t, testop.Config{})
	ctx := context.Background()
	for _, sidOnly := range []bool{false, true} {
		svc, mgr, _ := hintService(t, op, sidOnly)
		for _, s := range []struct{ id, iss, sid string }{{"a", op.URL, "sid-1"}, {"b", "https://other.example", "sid-1"}} {
			if err := mgr.Create(ctx, &session.Session{ID: s.id, App: app, Issuer: s.iss, Subject: "alice", SID: s.sid}); err != nil {
				t.Fatal(err)
			}
		}
		ended, err := svc.FrontchannelSID(ctx, app, "sid-1")
		wantEnded, wantReason := 0, logout.ReasonIssMissing
		if sidOnly {
			wantEnded, wantReason = 1, ""
		}
		if len(ended) != wantEnded || reason(err) != wantReason {
			t.Errorf("sid_only=%v: ended %d (%v), want %d (%q)", sidOnly, len(ended), err, wantEnded, wantReason)
		}
		if got := liveOf(t, mgr, "a", "b"); len(got) != 2-wantEnded || got[len(got)-1] != "b" {
			t.Errorf("sid_only=%v: live %v; the other issuer's session b must stay", sidOnly, got)
		}
		if _, err := svc.FrontchannelSID(ctx, app, strings.Repeat("x", logout.MaxIdentifierLen+1)); sidOnly && reason(err) != logout.ReasonTooLong {
			t.Errorf("sid_only: over-long sid: got %v, want %s", err, logout.ReasonTooLong)
		}
		if sidOnly {
			if _, err := svc.FrontchannelSID(ctx, app, "unknown"); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(svc.FrontchannelMetric().WithLabelValues(app, "no_session", "")); got != 1 {
				t.Errorf("no_session = %v, want 1", got)
			}
		}
	}
}
