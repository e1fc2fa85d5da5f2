package bff

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors, registered on the
// injected registry. The session counts are the session.Manager's
// (Manager.RegisterMetrics).
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	// jwksOverflow counts tokens refused at once because jwks_max_waiters
	// tokens already waited for a JWKS fetch.
	jwksOverflow *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_http_requests_total",
			Help: "HTTP requests handled, by app, route kind and status code.",
		}, []string{"app", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bffgate_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by app and route kind (proxied requests include the upstream).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"app", "route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_logins_total",
			Help: "Completed login callbacks, by app, result (ok, failed) and reason.",
		}, []string{"app", "result", "reason"}),
		jwksOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_jwks_wait_overflow_total",
			Help: "Tokens (logout or ID tokens) refused without waiting for a JWKS fetch because jwks_max_waiters were already waiting, by app.",
		}, []string{"app"}),
	}
	reg.MustRegister(m.requests, m.latency, m.logins, m.jwksOverflow)
	return m
}
