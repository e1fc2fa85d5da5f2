package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/bff"
	"github.com/bffgate/bffgate/upstream"
)

// Reload without restart: SIGHUP and POST /admin/reload read the config
// file again with the loader and checks of the start (loadConfig), and
// apply what can change while running. Everything else keeps its running
// value, and the keys that changed are named in a warning and in the
// report.

// reloadable are the keys (and tables) a reload applies; any other key
// that changed needs a restart.
var reloadable = []string{
	"apps",
	"server.rate_limits",
	"server.max_body_bytes",
	"server.max_connections", "server.admin_max_connections", // new connections beyond a lowered cap wait; none is closed
	"server.max_event_streams", "server.max_event_streams_per_user", // beyond a lowered cap the next streams are refused; none ends
	"server.body_read_timeout", "server.body_min_rate", // for the bodies that start after the reload
	"server.log_level",
	"server.tls_cert", "server.tls_key", // the files re-read; turning TLS on or off needs a restart
}

func isReloadable(key string) bool {
	for _, k := range reloadable {
		if key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
			return true
		}
	}
	return false
}

// reloader applies a config file to the running gateway. Reloads run one
// at a time.
type reloader struct {
	path   string
	getenv func(string) string
	gw     *bff.Gateway
	down   downstream
	// fanout builds the downstream fan-out of a config.
	fanout func(*fileConfig) (*upstream.Fanout, error)
	certs  *certReloader // nil without TLS
	live   *liveLimits   // the listeners' caps, body deadlines, log level
	logger *slog.Logger
	total  *prometheus.CounterVec

	mu      sync.Mutex
	running *fileConfig // what runs: the restart-only keys as at the start
	last    atomic.Pointer[bff.ReloadReport]
}

func newReloader(r *reloader, reg prometheus.Registerer) *reloader {
	r.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bffgate_config_reloads_total",
		Help: "Configuration reloads (SIGHUP, POST /admin/reload), by result: ok, invalid (refused, the old configuration runs), error (could not be applied).",
	}, []string{"result"})
	for _, res := range []string{bff.ReloadOK, bff.ReloadInvalid, bff.ReloadError} {
		r.total.WithLabelValues(res)
	}
	reg.MustRegister(r.total)
	return r
}

// LastReload implements bff.Reloader.
func (r *reloader) LastReload() *bff.ReloadReport { return r.last.Load() }

// Reload implements bff.Reloader: it reads the file, refuses it whole if
// anything is wrong (every problem logged and reported), else applies
// it.
func (r *reloader) Reload(ctx context.Context) bff.ReloadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.reload(ctx)
	rep.Time = time.Now()
	r.total.WithLabelValues(rep.Result).Inc()
	r.last.Store(&rep)
	switch rep.Result {
	case bff.ReloadOK:
		r.logger.Info("configuration reloaded", "event", "config_reload", "result", rep.Result,
			"apps_added", rep.Added, "apps_removed", rep.Removed, "apps_changed", rep.Changed,
			"sessions_ended", rep.SessionsEnded, "restart_required", rep.RestartRequired)
	default:
		for _, p := range rep.Problems {
			r.logger.Error("configuration reload refused", "event", "config_reload", "result", rep.Result, "problem", p)
		}
		r.logger.Error("configuration reload refused: the running configuration stays", "event", "config_reload",
			"result", rep.Result, "problems", len(rep.Problems))
	}
	return rep
}

func (r *reloader) reload(ctx context.Context) bff.ReloadReport {
	cfg, err := loadConfig(r.path, r.getenv)
	if err != nil {
		return bff.ReloadReport{Result: bff.ReloadInvalid, Problems: problems(err)}
	}
	restart := restartKeys(r.running, cfg)
	next := merged(r.running, cfg)
	if err := next.validate(); err != nil { // new keys with the running ones
		return bff.ReloadReport{Result: bff.ReloadInvalid, Problems: problems(err), RestartRequired: restart}
	}
	var cert *tls.Certificate
	if r.certs != nil {
		c, err := tls.LoadX509KeyPair(next.Server.TLSCert, next.Server.TLSKey)
		if err != nil {
			return bff.ReloadReport{Result: bff.ReloadInvalid, Problems: []string{"server.tls_cert: " + err.Error()}, RestartRequired: restart}
		}
		cert = &c
	}
	fanout, err := r.fanout(next)
	if err != nil {
		return bff.ReloadReport{Result: bff.ReloadInvalid, Problems: problems(err), RestartRequired: restart}
	}
	for _, k := range restart {
		r.logger.Warn("config key changed but needs a restart: the running value is kept", "event", "config_reload", "key", k)
	}
	changes, err := r.gw.Reload(ctx, next.gateway())
	if err != nil { // refused before anything changed
		return bff.ReloadReport{Result: bff.ReloadError, Problems: problems(err), RestartRequired: restart}
	}
	r.down.f.Store(fanout)
	r.live.apply(next.Server)
	if cert != nil {
		r.certs.use(next.Server.TLSCert, next.Server.TLSKey, cert)
	}
	r.running = next
	return bff.ReloadReport{Result: bff.ReloadOK, RestartRequired: restart, AppChanges: changes}
}

// problems splits a config error into its lines, without loadConfig's
// heading.
func problems(err error) []string {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasSuffix(line, " is invalid:") {
			out = append(out, line)
		}
	}
	return out
}

// merged is cfg with the running values of the keys that need a restart.
func merged(running, cfg *fileConfig) *fileConfig {
	next := *running
	next.Apps = cfg.Apps
	next.Server.RateLimits = cfg.Server.RateLimits
	next.Server.MaxBodyBytes = cfg.Server.MaxBodyBytes
	// All of them from cfg, its defaults derived as at the start
	// (max_event_streams from max_connections).
	next.Server.ConnLimits = cfg.Server.ConnLimits
	next.Server.LogLevel = cfg.Server.LogLevel
	if (running.Server.TLSCert == "") == (cfg.Server.TLSCert == "") {
		next.Server.TLSCert, next.Server.TLSKey = cfg.Server.TLSCert, cfg.Server.TLSKey
	}
	return &next
}

// restartKeys lists the keys whose value differs between the running
// config and cfg but that a reload does not apply.
func restartKeys(running, cfg *fileConfig) []string {
	var keys []string
	diffKeys(reflect.ValueOf(running).Elem(), reflect.ValueOf(cfg).Elem(), "", &keys)
	keys = slices.DeleteFunc(keys, isReloadable)
	if (running.Server.TLSCert == "") != (cfg.Server.TLSCert == "") {
		keys = append(keys, "server.tls_cert", "server.tls_key")
	}
	return keys
}

// diffKeys appends the key path of every TOML key whose value differs
// between a and b (values of the same type).
func diffKeys(a, b reflect.Value, path string, keys *[]string) {
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*keys = append(*keys, path)
		}
		return
	}
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		k, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case f.Anonymous && k == "":
			diffKeys(a.Field(i), b.Field(i), path, keys) // embedded: its keys sit in this table
		case !f.IsExported() || k == "" || k == "-":
		default:
			diffKeys(a.Field(i), b.Field(i), joinKey(path, k), keys)
		}
	}
}

// watchReloads reloads on every SIGHUP until ctx ends; the returned func
// stops it and waits for a reload under way.
func watchReloads(ctx context.Context, r *reloader) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.logger.Info("SIGHUP: reloading the configuration", "event", "config_reload")
				r.Reload(ctx)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}
