package session

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// countTimeout bounds the store reads of one scrape of
// bffgate_sessions_active, for each app.
const countTimeout = 2 * time.Second

// managerMetrics are the session-counting metrics the Manager owns.
type managerMetrics struct {
	ended  *prometheus.CounterVec
	active *prometheus.Desc
	apps   atomic.Pointer[[]string] // the apps of active
}

func newManagerMetrics() *managerMetrics {
	return &managerMetrics{
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_sessions_ended_total",
			Help: "Sessions ended on this replica, by app and cause (the store's expiries only with the memory store).",
		}, []string{"app", "cause"}),
		active: prometheus.NewDesc("bffgate_sessions_active",
			"Live sessions in the session store, by app (read from the store at scrape time; shared by all replicas with Redis).",
			[]string{"app"}, nil),
	}
}

// RegisterMetrics registers the Manager's session metrics on reg:
// bffgate_sessions_ended_total{app,cause}, counted as sessions end here,
// and bffgate_sessions_active{app} for each of apps, which every scrape
// reads from the store (Store.Count) with a short timeout, so that it is
// right whatever ended the sessions: another replica, an expiry in Redis.
// An app whose count cannot be read is left out of that scrape.
func (m *Manager) RegisterMetrics(reg prometheus.Registerer, apps []string) error {
	if err := reg.Register(m.metrics.ended); err != nil {
		return err
	}
	m.SetMetricApps(apps)
	return reg.Register(&activeCollector{m: m})
}

// SetMetricApps replaces the apps bffgate_sessions_active reports (after
// a configuration reload).
func (m *Manager) SetMetricApps(apps []string) {
	apps = slices.Clone(apps)
	m.metrics.apps.Store(&apps)
}

// activeCollector reads bffgate_sessions_active from the store.
type activeCollector struct {
	m *Manager
}

func (c *activeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.metrics.active }

func (c *activeCollector) Collect(ch chan<- prometheus.Metric) {
	apps := c.m.metrics.apps.Load()
	if apps == nil {
		return
	}
	for _, app := range *apps {
		ctx, cancel := context.WithTimeout(context.Background(), countTimeout)
		n, err := c.m.store.Count(ctx, app)
		cancel()
		if err != nil {
			c.m.logger.LogAttrs(ctx, slog.LevelWarn, "count sessions for metrics",
				slog.String("app", app), slog.String("err", err.Error()))
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.m.metrics.active, prometheus.GaugeValue, float64(n), app)
	}
}
