package main

import (
	"log/slog"
	"sync/atomic"

	"github.com/bffgate/bffgate/bff"
)

// liveLimits are the [server] keys that cmd applies and a reload changes
// while the gateway runs: the listeners' connection caps, the request
// body deadlines and the log level. (The event-stream caps are the
// Gateway's: bff.Gateway.Reload sets them.)
type liveLimits struct {
	level      slog.LevelVar
	body       atomic.Pointer[bodyLimits]
	conns      *connCap // max_connections, the gateway listener
	adminConns *connCap // admin_max_connections
}

// newLiveLimits starts with s's values (defaults applied).
func newLiveLimits(s bff.ServerConfig) *liveLimits {
	l := &liveLimits{conns: newConnCap(s.MaxConnections), adminConns: newConnCap(s.AdminMaxConnections)}
	l.apply(s)
	return l
}

// apply sets s's values. Lowering a connection cap closes no connection
// and ends no request: new connections beyond it wait, a body already
// being read keeps the deadlines of its start.
func (l *liveLimits) apply(s bff.ServerConfig) {
	_ = l.level.UnmarshalText([]byte(s.LogLevel)) // validated
	l.body.Store(&bodyLimits{idle: s.BodyReadTimeout, minRate: s.BodyMinRate})
	l.conns.set(s.MaxConnections)
	l.adminConns.set(s.AdminMaxConnections)
}
