package logout_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/logout"
)

// idp is a revocation endpoint that answers status once release is
// closed (or at once if it is nil), and reports each request on started.
type idp struct {
	status   int
	release  chan struct{}
	started  chan struct{}
	inFlight atomic.Int32
	maxSeen  atomic.Int32

	mu     sync.Mutex
	tokens []string
	auth   []string
}

func newIdP(t *testing.T, status int, blocking bool) (*idp, logout.RevocationTarget) {
	t.Helper()
	p := &idp{status: status, started: make(chan struct{}, 100)}
	if blocking {
		p.release = make(chan struct{})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.inFlight.Add(1)
		defer p.inFlight.Add(-1)
		for m := p.maxSeen.Load(); n > m && !p.maxSeen.CompareAndSwap(m, n); m = p.maxSeen.Load() {
		}
		user, pass, _ := r.BasicAuth()
		p.mu.Lock()
		p.tokens = append(p.tokens, r.PostFormValue("token"))
		p.auth = append(p.auth, user+":"+pass)
		p.mu.Unlock()
		p.started <- struct{}{}
		if p.release != nil {
			select {
			case <-p.release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(p.status)
	}))
	t.Cleanup(srv.Close)
	return p, logout.RevocationTarget{App: app, Endpoint: srv.URL, ClientID: "client", ClientSecret: "s3cret"}
}

func (p *idp) waitStarted(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-p.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the revocation request never reached the IdP")
		}
	}
}

func newRevoker(t *testing.T, cfg logout.RevokerConfig) (*logout.TokenRevoker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r := logout.NewTokenRevoker(nil, cfg, reg, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { r.Close(context.Background()) })
	return r, reg
}

func counted(t *testing.T, reg *prometheus.Registry, result string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// TestRevokerResults: success, an error status and a timeout, each
// counted once by result.
func TestRevokerResults(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		blocking bool // the IdP never answers: the per-revocation timeout ends it
		want     string
	}{
		{"revoked", http.StatusOK, false, "revoked"},
		{"error status", http.StatusBadRequest, false, "failed"},
		{"timeout", http.StatusOK, true, "failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, target := newIdP(t, tt.status, tt.blocking)
			r, reg := newRevoker(t, logout.RevokerConfig{Timeout: 100 * time.Millisecond})
			if !r.RevokeAsync(target, "rt-1") {
				t.Fatal("RevokeAsync dropped the only revocation")
			}
			if err := r.Close(context.Background()); err != nil { // drains
				t.Fatalf("Close: %v", err)
			}
			if got := counted(t, reg, tt.want); got != 1 {
				t.Errorf("revocations %s = %d, want 1", tt.want, got)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.tokens) != 1 || p.tokens[0] != "rt-1" || p.auth[0] != "client:s3cret" {
				t.Errorf("IdP got tokens %q with auth %q, want rt-1 as client:s3cret", p.tokens, p.auth)
			}
		})
	}
}

// TestRevokerQueueFull: with every worker busy and the queue full, a
// revocation is dropped at once and counted; the queued ones still run.
func TestRevokerQueueFull(t *testing.T) {
	p, target := newIdP(t, http.StatusOK, true)
	r, reg := newRevoker(t, logout.RevokerConfig{Workers: 1, QueueSize: 1})
	if !r.RevokeAsync(target, "rt-1") {
		t.Fatal("first revocation dropped")
	}
	p.waitStarted(t, 1) // the worker is busy with rt-1
	if !r.RevokeAsync(target, "rt-2") {
		t.Fatal("second revocation dropped, want it queued")
	}
	if r.RevokeAsync(target, "rt-3") {
		t.Fatal("third revocation accepted, want it dropped: the queue holds one")
	}
	if got := counted(t, reg, "dropped"); got != 1 {
		t.Errorf("dropped = %d, want 1", got)
	}
	close(p.release)
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := counted(t, reg, "revoked"); got != 2 {
		t.Errorf("revoked = %d, want 2", got)
	}
}

// TestRevokerBoundedAndDrainedOnClose: many logouts at once run on at
// most Workers connections, and Close waits for all that were queued.
func TestRevokerBoundedAndDrainedOnClose(t *testing.T) {
	p, target := newIdP(t, http.StatusOK, true)
	r, reg := newRevoker(t, logout.RevokerConfig{Workers: 2, QueueSize: 50})
	for range 20 {
		if !r.RevokeAsync(target, "rt") {
			t.Fatal("revocation dropped")
		}
	}
	p.waitStarted(t, 2)
	closed := make(chan error, 1)
	go func() { closed <- r.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v with 18 revocations queued", err)
	default:
	}
	close(p.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := counted(t, reg, "revoked"); got != 20 {
		t.Errorf("revoked = %d, want 20", got)
	}
	if got := p.maxSeen.Load(); got > 2 {
		t.Errorf("%d revocations ran at once, want at most 2 workers", got)
	}
	if r.RevokeAsync(target, "late") {
		t.Error("RevokeAsync after Close accepted the revocation")
	}
}

// TestRevokerCloseDeadline: when ctx ends first, Close cancels the
// revocation under way, drops the queued ones and says so.
func TestRevokerCloseDeadline(t *testing.T) {
	p, target := newIdP(t, http.StatusOK, true)
	r, reg := newRevoker(t, logout.RevokerConfig{Workers: 1, QueueSize: 10, Timeout: time.Hour})
	for range 3 {
		r.RevokeAsync(target, "rt")
	}
	p.waitStarted(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close = %v, want context.Canceled", err)
	}
	if got, want := counted(t, reg, "failed")+counted(t, reg, "dropped"), 3; got != want {
		t.Errorf("failed+dropped = %d, want %d", got, want)
	}
	if got := testutil.CollectAndCount(reg, "bffgate_token_revocations_total"); got == 0 {
		t.Error("no revocation counted")
	}
}
