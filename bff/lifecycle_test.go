package bff

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

// metricValue reads the gauge or counter name with the labels from reg;
// ok is false if it has no such sample.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, want := range labels {
				if got[k] != want {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// TestReloginReplacesSession: signing in again in the same browser ends
// the previous session like any other end, with cause "replaced": the
// observers (event streams, downstream apps, refresh token revocation)
// are told, and the active-sessions gauge counts one session.
func TestReloginReplacesSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ended := &storetest.EndLog{}
	h.mgr.Observe(ended)
	c := h.login("/")
	first := h.sessionOf(c)
	resp, visited := h.follow(c, "/bff/login?returnUrl=/")
	if last := visited[len(visited)-1]; resp.StatusCode != http.StatusOK || !strings.HasPrefix(last, h.srv.URL+"/") {
		t.Fatalf("second login ended at %s with %d", last, resp.StatusCode)
	}
	second := h.sessionOf(c)
	if second.ID == first.ID {
		t.Fatal("the second login kept the session id")
	}
	if got, want := ended.Lines(), []string{"replaced " + first.ID}; !slices.Equal(got, want) {
		t.Errorf("observers told: got %q, want %q", got, want)
	}
	if got, ok := metricValue(t, h.gw.registry, "bffgate_sessions_active", map[string]string{"app": "demo"}); got != 1 {
		t.Errorf("bffgate_sessions_active{app=demo} = %v (present %v), want 1", got, ok)
	}
	if got, _ := metricValue(t, h.gw.registry, "bffgate_sessions_ended_total", map[string]string{"app": "demo", "cause": "replaced"}); got != 1 {
		t.Errorf(`bffgate_sessions_ended_total{cause="replaced"} = %v, want 1`, got)
	}
	waitFor(t, "the replaced session's refresh token revoked at the IdP", func() bool {
		return slices.Contains(h.op.Revoked(), first.RefreshToken)
	})
}

// TestActiveSessionsRedisExpiry: with Redis, bffgate_sessions_active is
// read from the store, so it drops when a session expires there (no
// replica is told of an expiry in Redis).
func TestActiveSessionsRedisExpiry(t *testing.T) {
	rdb := testRedisClient(t)
	var skew atomic.Int64 // how far the store's clock is ahead
	rs, err := session.NewRedisStore(rdb, session.RedisConfig{
		Secret:   testSecret,
		Timeouts: session.Timeouts{Idle: 30 * time.Minute, Absolute: 8 * time.Hour},
		Now:      func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	h := newHarness(t, harnessOpts{wrapStore: func(session.Store) session.Store { return rs }})
	h.login("/")
	active := func() float64 {
		t.Helper()
		v, _ := metricValue(t, h.gw.registry, "bffgate_sessions_active", map[string]string{"app": "demo"})
		return v
	}
	if got := active(); got != 1 {
		t.Fatalf("bffgate_sessions_active{app=demo} after login = %v, want 1", got)
	}
	skew.Store(int64(31 * time.Minute)) // past the idle timeout
	if got := active(); got != 0 {
		t.Errorf("bffgate_sessions_active{app=demo} after the session expired = %v, want 0", got)
	}
}
