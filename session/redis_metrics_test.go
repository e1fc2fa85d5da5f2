package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/session"
)

// TestRedisUpMetric checks bffgate_redis_up and the last successful ping
// time: set by a ping that works, up turns 0 when a ping fails and the
// time stays.
func TestRedisUpMetric(t *testing.T) {
	srv := ownRedis(t) // its own server: this test stops it
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	rdb, err := session.NewRedisClient(session.Config{RedisURL: srv.URL(0)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if n, err := testutil.GatherAndCount(reg, "bffgate_redis_up"); err != nil || n != 1 {
		t.Fatalf("bffgate_redis_up: %d series, %v", n, err)
	}
	before := time.Now()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if gauge("bffgate_redis_up") != 1 {
		t.Error("bffgate_redis_up is not 1 after a ping that worked")
	}
	last := gauge("bffgate_redis_last_ping_success_timestamp_seconds")
	if last < float64(before.Unix()) {
		t.Errorf("last ping time %v, want at least %v", last, before.Unix())
	}
	srv.Stop()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("ping with Redis down worked")
	}
	if gauge("bffgate_redis_up") != 0 {
		t.Error("bffgate_redis_up is not 0 after a failed ping")
	}
	if got := gauge("bffgate_redis_last_ping_success_timestamp_seconds"); got != last {
		t.Errorf("last ping time moved on a failed ping: %v, was %v", got, last)
	}
}
