package logout_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

const app = "demo"

// fixture is a Service over a real session.Manager (memory store) with
// one registered app verifying tokens of op, and sessions:
//
//	s1 alice sid-1, s2 alice sid-1, s3 alice sid-2, s4 bob sid-3.
type fixture struct {
	svc    *logout.Service
	mgr    *session.Manager
	op     *testop.OP
	ended  *storetest.EndLog // its observer
	reg    *prometheus.Registry
	client *logout.Client
}

// newManager is a session.Manager over st (nil: a new memory store),
// closed when the test ends.
func newManager(t *testing.T, st session.Store) *session.Manager {
	t.Helper()
	if st == nil {
		st = session.NewMemoryStore(session.MemoryConfig{})
	}
	mgr := session.NewManager(st, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { mgr.Close() })
	return mgr
}

// newService is a Service over sessions, registering its metrics in reg
// (nil: a new registry) and logging to logger (nil: nowhere), closed when
// the test ends.
func newService(t *testing.T, cfg logout.ServiceConfig, sessions logout.Sessions, reg prometheus.Registerer, logger *slog.Logger) *logout.Service {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	svc := logout.NewService(cfg, sessions, reg, logger)
	t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

func newFixture(t *testing.T, op *testop.OP, sessions func(*session.Manager) logout.Sessions) *fixture {
	t.Helper()
	mgr := newManager(t, nil)
	f := &fixture{mgr: mgr, op: op, ended: &storetest.EndLog{}, reg: prometheus.NewRegistry()}
	var ss logout.Sessions = mgr
	if sessions != nil {
		ss = sessions(mgr)
	}
	f.svc = newService(t, logout.ServiceConfig{}, ss, f.reg, nil)
	f.client = &logout.Client{App: app, Issuer: op.URL, ClientID: op.ClientID(), Verifier: newVerifier(t, op, nil),
		Revocation: logout.RevocationTarget{App: app, Endpoint: op.URL + "/revoke", ClientID: op.ClientID(), ClientSecret: op.ClientSecret()}}
	f.svc.Register(f.client)
	mgr.Observe(f.ended)
	ctx := context.Background()
	for _, s := range []struct{ id, sub, sid string }{
		{"s1", "alice", "sid-1"}, {"s2", "alice", "sid-1"}, {"s3", "alice", "sid-2"}, {"s4", "bob", "sid-3"},
	} {
		err := mgr.Create(ctx, &session.Session{ID: s.id, App: app, Issuer: op.URL, Subject: s.sub, SID: s.sid,
			RefreshToken: refreshToken(t, s.id)})
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// refreshToken is the refresh token of session id in test t: unique, as
// tests share an OP that records every revoked token.
func refreshToken(t *testing.T, id string) string { return "rt-" + id + "-" + t.Name() }

// live returns the ids of the sessions still in the store.
func (f *fixture) live(t *testing.T) []string {
	return liveOf(t, f.mgr, "s1", "s2", "s3", "s4")
}

// liveOf returns those of ids whose session mgr still has.
func liveOf(t *testing.T, mgr *session.Manager, ids ...string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		_, err := mgr.Get(context.Background(), id)
		switch {
		case err == nil:
			out = append(out, id)
		case !errors.Is(err, session.ErrNotFound):
			t.Fatal(err)
		}
	}
	return out
}

func (f *fixture) session(t *testing.T, id string) *session.Session {
	t.Helper()
	s, err := f.mgr.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestServicePaths runs each logout path and checks which sessions it
// ended, with which cause, and what it returned.
func TestServicePaths(t *testing.T) {
	tests := []struct {
		name      string
		run       func(t *testing.T, f *fixture) (int, error) // sessions ended, error
		wantN     int
		wantErr   error  // errors.Is target; nil means none
		wantVE    string // a *ValidationError with this reason
		wantEnded []string
	}{
		{name: "back-channel by sid", run: func(t *testing.T, f *fixture) (int, error) {
			r, err := f.svc.Backchannel(context.Background(), f.op.Sign(f.op.LogoutToken(set("sub", "alice", "sid", "sid-1")), testop.SignOpts{}))
			return endedIn(r), err
		}, wantN: 2, wantEnded: []string{"backchannel s1", "backchannel s2"}},
		{name: "back-channel by sub only", run: func(t *testing.T, f *fixture) (int, error) {
			r, err := f.svc.Backchannel(context.Background(), f.op.Sign(f.op.LogoutToken(func(c map[string]any) {
				c["sub"] = "alice"
				delete(c, "sid")
			}), testop.SignOpts{}))
			return endedIn(r), err
		}, wantN: 3, wantEnded: []string{"backchannel s1", "backchannel s2", "backchannel s3"}},
		{name: "back-channel of a session already gone", run: func(t *testing.T, f *fixture) (int, error) {
			r, err := f.svc.Backchannel(context.Background(), f.op.Sign(f.op.LogoutToken(set("sub", "carol", "sid", "gone")), testop.SignOpts{}))
			if len(r) != 1 {
				t.Errorf("Backchannel results = %d, want 1 (a known app, nothing to end)", len(r))
			}
			return endedIn(r), err
		}},
		{name: "back-channel bad token", run: func(t *testing.T, f *fixture) (int, error) {
			r, err := f.svc.Backchannel(context.Background(), f.op.Sign(f.op.LogoutToken(set("nonce", "n")), testop.SignOpts{}))
			return endedIn(r), err
		}, wantVE: logout.ReasonNonce},
		{name: "back-channel for no configured app", run: func(t *testing.T, f *fixture) (int, error) {
			r, err := f.svc.Backchannel(context.Background(), f.op.Sign(f.op.LogoutToken(set("aud", "other")), testop.SignOpts{}))
			return endedIn(r), err
		}, wantVE: logout.ReasonNoClient},
		{name: "front-channel iss+sid", run: func(t *testing.T, f *fixture) (int, error) {
			ended, err := f.svc.Frontchannel(context.Background(), app, f.op.URL, "sid-2")
			return len(ended), err
		}, wantN: 1, wantEnded: []string{"frontchannel s3"}},
		{name: "front-channel other issuer", run: func(t *testing.T, f *fixture) (int, error) {
			ended, err := f.svc.Frontchannel(context.Background(), app, "https://evil.example", "sid-2")
			return len(ended), err
		}, wantVE: logout.ReasonIss},
		{name: "front-channel empty sid", run: func(t *testing.T, f *fixture) (int, error) {
			ended, err := f.svc.Frontchannel(context.Background(), app, f.op.URL, "")
			return len(ended), err
		}, wantVE: logout.ReasonSubSIDMissing},
		{name: "front-channel unknown app", run: func(t *testing.T, f *fixture) (int, error) {
			ended, err := f.svc.Frontchannel(context.Background(), "nope", f.op.URL, "sid-2")
			if err == nil || !strings.Contains(err.Error(), "discovery") {
				t.Errorf("Frontchannel of an unregistered app: %v, want the discovery error", err)
			}
			return len(ended), nil
		}},
		{name: "front-channel cookie", run: func(t *testing.T, f *fixture) (int, error) {
			s, err := f.svc.FrontchannelCookie(context.Background(), "s4")
			if s == nil || s.ID != "s4" {
				t.Errorf("FrontchannelCookie = %v, want s4", s)
			}
			return 1, err
		}, wantN: 1, wantEnded: []string{"frontchannel s4"}},
		{name: "front-channel cookie of a session gone", run: func(t *testing.T, f *fixture) (int, error) {
			s, err := f.svc.FrontchannelCookie(context.Background(), "gone")
			if s != nil {
				t.Errorf("FrontchannelCookie = %v, want nil", s)
			}
			return 0, err
		}},
		{name: "RP-initiated with the session's handle", run: func(t *testing.T, f *fixture) (int, error) {
			s := f.session(t, "s3")
			return 1, f.svc.RPInitiated(context.Background(), s, f.svc.Handle(s))
		}, wantN: 1, wantEnded: []string{"rp_initiated s3"}},
		{name: "RP-initiated with the IdP's sid", run: func(t *testing.T, f *fixture) (int, error) {
			return 0, f.svc.RPInitiated(context.Background(), f.session(t, "s3"), "sid-2")
		}, wantErr: logout.ErrHandleMismatch},
		{name: "RP-initiated with the hashed id (logs, admin list)", run: func(t *testing.T, f *fixture) (int, error) {
			return 0, f.svc.RPInitiated(context.Background(), f.session(t, "s4"), session.Hash("s4"))
		}, wantErr: logout.ErrHandleMismatch},
		{name: "RP-initiated with another session's handle", run: func(t *testing.T, f *fixture) (int, error) {
			return 0, f.svc.RPInitiated(context.Background(), f.session(t, "s3"), f.svc.Handle(f.session(t, "s1")))
		}, wantErr: logout.ErrHandleMismatch},
		{name: "RP-initiated of a session already gone", run: func(t *testing.T, f *fixture) (int, error) {
			s := f.session(t, "s3")
			s.ID = "gone"
			return 0, f.svc.RPInitiated(context.Background(), s, f.svc.Handle(s))
		}},
		{name: "admin by sub", run: func(t *testing.T, f *fixture) (int, error) {
			return f.svc.Admin(context.Background(), logout.AdminRequest{App: app, Subject: "bob"}, []string{app})
		}, wantN: 1, wantEnded: []string{"admin s4"}},
		{name: "admin by sid in every app", run: func(t *testing.T, f *fixture) (int, error) {
			return f.svc.Admin(context.Background(), logout.AdminRequest{SID: "sid-1"}, []string{app})
		}, wantN: 2, wantEnded: []string{"admin s1", "admin s2"}},
		{name: "admin by session handle", run: func(t *testing.T, f *fixture) (int, error) {
			return f.svc.Admin(context.Background(), logout.AdminRequest{Session: session.Hash("s2")}, []string{"other", app})
		}, wantN: 1, wantEnded: []string{"admin s2"}},
		{name: "admin by unknown session handle", run: func(t *testing.T, f *fixture) (int, error) {
			return f.svc.Admin(context.Background(), logout.AdminRequest{Session: "nope"}, []string{app})
		}},
		{name: "admin sub without app", run: func(t *testing.T, f *fixture) (int, error) {
			return f.svc.Admin(context.Background(), logout.AdminRequest{Subject: "bob"}, []string{app})
		}, wantErr: logout.ErrAdminRequest},
		{name: "admin two selectors", run: func(t *testing.T, f *fixture) (int, error) {
			return f.svc.Admin(context.Background(), logout.AdminRequest{SID: "sid-1", Session: "x"}, []string{app})
		}, wantErr: logout.ErrAdminRequest},
	}
	op := testop.New(t, testop.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, op, nil)
			n, err := tt.run(t, f)
			var ve *logout.ValidationError
			switch {
			case tt.wantVE != "":
				if !errors.As(err, &ve) || ve.Reason != tt.wantVE {
					t.Errorf("error = %v, want a ValidationError %q", err, tt.wantVE)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("error = %v, want none", err)
			}
			if n != tt.wantN {
				t.Errorf("sessions ended = %d, want %d", n, tt.wantN)
			}
			if got := slices.Sorted(slices.Values(f.ended.Lines())); !slices.Equal(got, tt.wantEnded) {
				t.Errorf("observers saw %q, want %q", got, tt.wantEnded)
			}
			if got, want := len(f.live(t)), 4-len(tt.wantEnded); got != want {
				t.Errorf("%d sessions left, want %d", got, want)
			}
		})
	}
}

func endedIn(rs []logout.Result) int {
	n := 0
	for _, r := range rs {
		n += len(r.Ended)
	}
	return n
}

// TestServiceTombstones: what a logout by sid or sub ended stays ended: a
// session created afterwards for that sid, or for that sub at an earlier
// login, is refused.
func TestServiceTombstones(t *testing.T) {
	f := newFixture(t, testop.New(t, testop.Config{}), nil)
	ctx := context.Background()
	if _, err := f.svc.Frontchannel(ctx, app, f.op.URL, "sid-2"); err != nil {
		t.Fatal(err)
	}
	tok := f.op.Sign(f.op.LogoutToken(func(c map[string]any) { c["sub"] = "bob"; delete(c, "sid") }), testop.SignOpts{})
	if _, err := f.svc.Backchannel(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*session.Session{
		{ID: "late-sid", App: app, Issuer: f.op.URL, Subject: "alice", SID: "sid-2"},
		{ID: "late-sub", App: app, Issuer: f.op.URL, Subject: "bob", SID: "sid-9", CreatedAt: f.session(t, "s1").CreatedAt},
	} {
		if err := f.mgr.Create(ctx, s); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("Create %s after the logout: %v, want ErrRevoked", s.ID, err)
		}
	}
	// Replaying the same token is refused.
	if _, err := f.svc.Backchannel(ctx, tok); reason(err) != logout.ReasonReplay {
		t.Errorf("replayed token: %v, want reason replay", err)
	}
}

// failing is a Sessions whose every call fails, as a store that is down.
type failing struct{ logout.Sessions }

var errDown = errors.New("store down")

func (failing) End(context.Context, string, session.Cause) (*session.Session, error) {
	return nil, errDown
}
func (failing) EndBySID(context.Context, string, string, string, string, session.Cause) ([]*session.Session, error) {
	return nil, errDown
}
func (failing) EndBySub(context.Context, string, string, string, session.Cause) ([]*session.Session, error) {
	return nil, errDown
}
func (failing) List(context.Context, session.Filter) ([]*session.Session, error) {
	return nil, errDown
}

// TestServiceStoreFailure: every path reports a store failure as a
// *StoreError (the handlers answer 400 application_error or 503), and the
// back-channel counts it.
func TestServiceStoreFailure(t *testing.T) {
	f := newFixture(t, testop.New(t, testop.Config{}), func(m *session.Manager) logout.Sessions { return failing{m} })
	ctx := context.Background()
	s := f.session(t, "s1")
	_, bcErr := f.svc.Backchannel(ctx, f.op.Sign(f.op.LogoutToken(nil), testop.SignOpts{}))
	_, fcErr := f.svc.Frontchannel(ctx, app, f.op.URL, "sid-1")
	_, ckErr := f.svc.FrontchannelCookie(ctx, "s1")
	_, adErr := f.svc.Admin(ctx, logout.AdminRequest{SID: "sid-1"}, []string{app})
	_, hdErr := f.svc.Admin(ctx, logout.AdminRequest{Session: "x"}, []string{app})
	for name, err := range map[string]error{
		"Backchannel": bcErr, "Frontchannel": fcErr, "FrontchannelCookie": ckErr,
		"RPInitiated": f.svc.RPInitiated(ctx, s, f.svc.Handle(s)), "Admin sid": adErr, "Admin session": hdErr,
	} {
		var se *logout.StoreError
		if !errors.As(err, &se) || !errors.Is(err, errDown) {
			t.Errorf("%s error = %v, want a *StoreError wrapping the store's", name, err)
		}
	}
	if got := testutil.ToFloat64(f.svc.Metric().WithLabelValues(app, "error", "store", "")); got != 1 {
		t.Errorf(`logout tokens {result="error",reason="store"} = %v, want 1`, got)
	}
	if got := len(f.live(t)); got != 4 {
		t.Errorf("%d sessions left, want 4", got)
	}
}

// TestServiceRevokesRefreshTokens: a logout of any kind revokes the
// ended sessions' refresh tokens at the IdP; an expiry or a failed
// refresh does not.
func TestServiceRevokesRefreshTokens(t *testing.T) {
	tests := []struct {
		cause session.Cause
		want  bool
	}{
		{session.CauseBackchannel, true},
		{session.CauseFrontchannel, true},
		{session.CauseRPInitiated, true},
		{session.CauseAdmin, true},
		{session.CauseReplaced, true},
		{session.CauseExpired, false},
		{session.CauseRefreshFailed, false},
	}
	op := testop.New(t, testop.Config{})
	for _, tt := range tests {
		t.Run(string(tt.cause), func(t *testing.T) {
			f := newFixture(t, op, nil)
			f.mgr.Observe(f.svc)
			if _, err := f.mgr.End(context.Background(), "s1", tt.cause); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.Close(context.Background()); err != nil { // drains the queue
				t.Fatal(err)
			}
			if got := slices.Contains(f.op.Revoked(), refreshToken(t, "s1")); got != tt.want {
				t.Errorf("refresh token revoked = %v, want %v (revoked: %q)", got, tt.want, f.op.Revoked())
			}
		})
	}
}

// TestServiceRevokesOnlyRegisteredApps: before its discovery is done an
// app has no revocation endpoint, so nothing is sent.
func TestServiceRevokesOnlyRegisteredApps(t *testing.T) {
	f := newFixture(t, testop.New(t, testop.Config{}), nil)
	s := f.session(t, "s1")
	s.App = "unregistered"
	f.svc.SessionEnded(context.Background(), session.CauseAdmin, s)
	if err := f.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.op.Revoked(); len(got) != 0 {
		t.Errorf("revoked %q, want nothing", got)
	}
	if got := testutil.CollectAndCount(f.reg, "bffgate_token_revocations_total"); got != 0 {
		t.Errorf("%d revocation series, want 0", got)
	}
}
