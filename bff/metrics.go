package bff

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

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
	// clientGrants counts the client-credentials grants of the APIs'
	// client tokens.
	clientGrants *prometheus.CounterVec

	// children caches the request metrics' children by (app, route,
	// status), so that a request costs a map lookup instead of two
	// WithLabelValues (hashing the labels, formatting the status). The
	// map is never modified: an addition (under mu) stores a new one, so
	// that lookups take no lock.
	mu       sync.Mutex
	children atomic.Pointer[map[requestKey]requestChildren]
}

// requestKey is the labels of one request's metrics.
type requestKey struct {
	app, route string
	code       int
}

// requestChildren are the request metrics of one requestKey.
type requestChildren struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// request returns the request metrics' children for (app, route, code),
// resolving them with WithLabelValues the first time only. The keys are
// bounded: apps, route kinds, and status codes (100-999).
func (m *metrics) request(app, route string, code int) requestChildren {
	k := requestKey{app, route, code}
	if c, ok := (*m.children.Load())[k]; ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.children.Load()
	if c, ok := cur[k]; ok {
		return c
	}
	c := requestChildren{
		count:   m.requests.WithLabelValues(app, route, strconv.Itoa(code)),
		latency: m.latency.WithLabelValues(app, route),
	}
	next := make(map[requestKey]requestChildren, len(cur)+1)
	maps.Copy(next, cur)
	next[k] = c
	m.children.Store(&next)
	return c
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
		clientGrants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_client_token_grants_total",
			Help: "Client-credentials grants for the APIs' client tokens, by app and result (ok, refused, failed).",
		}, []string{"app", "result"}),
	}
	m.children.Store(&map[requestKey]requestChildren{})
	reg.MustRegister(m.requests, m.latency, m.logins, m.jwksOverflow, m.clientGrants)
	return m
}
