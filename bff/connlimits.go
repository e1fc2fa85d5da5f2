package bff

import (
	"errors"
	"time"
)

// ConnLimits bound what clients can hold open on the gateway: connections,
// slow request bodies and /bff/events streams. Its keys sit directly in
// [server]; docs/security.md ("Limits") lists them with their defaults.
type ConnLimits struct {
	// MaxConnections caps the gateway listener's concurrent connections;
	// beyond it new connections wait in the kernel's accept queue. Default
	// 40% of the process's file-descriptor soft limit (RLIMIT_NOFILE): a
	// proxied request may hold a second descriptor upstream, and the rest
	// stays for the admin listener, Redis and files.
	MaxConnections int `toml:"max_connections"`
	// AdminMaxConnections caps the admin listener's connections, counted
	// apart from the gateway listener's so that health checks and metrics
	// still answer when it is full. Default 64.
	AdminMaxConnections int `toml:"admin_max_connections"`
	// BodyReadTimeout is the longest wait for the next bytes of a request
	// body; the connection is closed beyond it. Default 30s.
	BodyReadTimeout time.Duration `toml:"body_read_timeout"`
	// BodyMinRate is the least average rate, in bytes per second, at which
	// a request body must arrive once BodyReadTimeout has passed since it
	// started, so that a trickle cannot hold a connection. Default 1024.
	BodyMinRate int `toml:"body_min_rate"`
	// MaxEventStreams caps the /bff/events streams of the whole process;
	// beyond it: 503 with Retry-After. Default half of MaxConnections, so
	// that streams never take every connection from logouts and API calls.
	MaxEventStreams int `toml:"max_event_streams"`
	// MaxEventStreamsPerUser caps the streams of one user (app, issuer and
	// subject) across all their sessions; beyond it: 429 with Retry-After.
	// Default 32.
	MaxEventStreamsPerUser int `toml:"max_event_streams_per_user"`
}

// fdFallback stands for the descriptor limit where the platform does not
// tell it.
const fdFallback = 4096

func (l *ConnLimits) defaults() {
	if l.MaxConnections == 0 {
		fds := fdSoftLimit()
		if fds <= 0 {
			fds = fdFallback
		}
		l.MaxConnections = max(fds*2/5, 16)
	}
	if l.AdminMaxConnections == 0 {
		l.AdminMaxConnections = 64
	}
	if l.BodyReadTimeout == 0 {
		l.BodyReadTimeout = 30 * time.Second
	}
	if l.BodyMinRate == 0 {
		l.BodyMinRate = 1024
	}
	if l.MaxEventStreams == 0 {
		l.MaxEventStreams = max(l.MaxConnections/2, 1)
	}
	if l.MaxEventStreamsPerUser == 0 {
		l.MaxEventStreamsPerUser = 32
	}
}

func (l *ConnLimits) validate() []error {
	var errs []error
	if l.MaxConnections < 1 {
		errs = append(errs, errors.New("max_connections: must be positive"))
	}
	if l.AdminMaxConnections < 1 {
		errs = append(errs, errors.New("admin_max_connections: must be positive"))
	}
	if l.BodyReadTimeout < time.Second {
		errs = append(errs, errors.New("body_read_timeout: must be at least 1s"))
	}
	if l.BodyMinRate < 1 {
		errs = append(errs, errors.New("body_min_rate: must be positive (bytes per second)"))
	}
	if l.MaxEventStreams < 1 {
		errs = append(errs, errors.New("max_event_streams: must be positive"))
	} else if l.MaxConnections >= 1 && l.MaxEventStreams >= l.MaxConnections {
		errs = append(errs, errors.New("max_event_streams: must be below max_connections (each stream holds a connection; the rest serve logouts and API calls)"))
	}
	if l.MaxEventStreamsPerUser < 1 {
		errs = append(errs, errors.New("max_event_streams_per_user: must be positive"))
	}
	return errs
}
