package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

// TestDocMetricsRegistered checks that every bffgate_* metric the docs
// (README.md, docs/*.md, config.toml) name is registered by a running
// gateway (with Redis
// and a downstream app, so that every part is wired). A vector with no
// series yet is absent from /metrics, so the test asks the registry
// itself: registering a probe under a name that is taken fails.
func TestDocMetricsRegistered(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`bffgate_[a-z0-9_]*[a-z0-9]`)
	named := map[string][]string{} // metric name -> the docs that name it
	for _, path := range append(docs, "../../README.md", "../../config.toml") {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metric.FindAllString(string(b), -1) {
			if doc := filepath.Base(path); !slices.Contains(named[name], doc) {
				named[name] = append(named[name], doc)
			}
		}
	}
	if len(named) < 10 {
		t.Fatalf("found only %d metric names in the docs: %v", len(named), named)
	}

	regs := make(chan *prometheus.Registry, 1)
	newRegistry = func() *prometheus.Registry {
		reg := prometheus.NewRegistry()
		regs <- reg
		return reg
	}
	t.Cleanup(func() { newRegistry = prometheus.NewRegistry })
	op := testop.New(t, testop.Config{})
	r := newReplica(t, replicaOpts{redisURL: redisSrv.URL(9), op: op, api: "http://127.0.0.1:1", downstream: "http://127.0.0.1:1/logout"})
	r.start(t)
	waitStatus(t, "http://"+r.admin+"/readyz", http.StatusOK)
	reg := <-regs

	for name, docs := range named {
		probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe"})
		if err := reg.Register(probe); err == nil {
			reg.Unregister(probe)
			t.Errorf("%s name %s, which the gateway does not register", strings.Join(docs, ", "), name)
		}
	}
}
