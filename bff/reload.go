package bff

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

// Reloader reloads the configuration file (cmd owns the file; the
// Gateway only applies its [[apps]] and reloadable [server] keys). The
// admin listener's POST /admin/reload and /readyz use it.
type Reloader interface {
	// Reload reads and applies the configuration, or refuses it whole.
	Reload(ctx context.Context) ReloadReport
	// LastReload is the report of the last reload, nil before the first.
	LastReload() *ReloadReport
}

// Reload results: the "result" of ReloadReport and the label of
// bffgate_config_reloads_total.
const (
	ReloadOK      = "ok"      // applied
	ReloadInvalid = "invalid" // the new file was refused; the old configuration runs
	ReloadError   = "error"   // a valid file could not be applied; the old configuration runs
)

// ReloadReport is the outcome of one reload, as POST /admin/reload
// answers it. It names keys and apps, never values.
type ReloadReport struct {
	Result string    `json:"result"`
	Time   time.Time `json:"time"`
	// Problems are every problem of a refused configuration, each with
	// its key path.
	Problems []string `json:"problems,omitempty"`
	// RestartRequired are the keys that changed in the file but need a
	// restart: their running values were kept.
	RestartRequired []string `json:"restart_required,omitempty"`
	AppChanges
}

// AppChanges say what a reload did to the apps, by name.
type AppChanges struct {
	Added     []string `json:"apps_added,omitempty"`
	Removed   []string `json:"apps_removed,omitempty"`
	Changed   []string `json:"apps_changed,omitempty"`
	Unchanged []string `json:"apps_unchanged,omitempty"`
	// SessionsEnded counts the sessions ended (cause "config") because
	// their app was removed or its issuer or client_id changed.
	SessionsEnded int `json:"sessions_ended"`
}

// SetReloader installs the reloader behind POST /admin/reload and the
// last reload in /readyz. Call it before AdminHandler.
func (g *Gateway) SetReloader(r Reloader) { g.reloader = r }

// endTimeout bounds the ending of the sessions a reload leaves without
// an app.
const endTimeout = 30 * time.Second

// Reload applies cfg (an error means it was refused and nothing
// changed): apps added, removed or changed, and [server]'s rate
// limits, body cap and event-stream caps (max_event_streams,
// max_event_streams_per_user: lowering them ends no open stream, only
// the next ones beyond them are refused); every other [server] key keeps
// its running value (cmd applies the listeners' caps and the log level,
// and reports the rest). An invalid cfg is refused whole and nothing
// changes. The new apps and routes are swapped in atomically: requests
// in flight finish on the snapshot they started with.
//
// An unchanged app is kept as it is. A changed app whose OIDC settings
// (sameIdentity) are the same keeps its discovery, keys and refresher
// and gets new proxies and routes. Any other changed app, and a new one,
// runs discovery in the background as at the start (/readyz is false
// until it is done; its /bff/login answers 503 meanwhile). The sessions
// of a removed app, and of an app whose issuer or client_id changed,
// could no longer be used: they are ended with cause "config", which
// tells the downstream apps and the open tabs and revokes their refresh
// tokens at the IdP that issued them.
func (g *Gateway) Reload(ctx context.Context, cfg Config) (AppChanges, error) {
	var ch AppChanges
	if err := cfg.Validate(); err != nil {
		return ch, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.cur.Load()
	byName := make(map[string]*app, len(old.apps))
	for _, a := range old.apps {
		byName[a.cfg.Name] = a
	}
	apps := make([]*app, 0, len(cfg.Apps))
	var fresh, retired []*app // discovery to start; discovery to stop
	// The apps whose sessions end, with their new config (nil: removed).
	type ending struct {
		app string
		cfg *AppConfig
	}
	var ends []ending
	for _, ac := range cfg.Apps {
		prev := byName[ac.Name]
		delete(byName, ac.Name)
		switch {
		case prev == nil:
			ch.Added = append(ch.Added, ac.Name)
		case appConfigEqual(prev.cfg, ac):
			ch.Unchanged = append(ch.Unchanged, ac.Name)
			apps = append(apps, prev)
			continue
		default:
			ch.Changed = append(ch.Changed, ac.Name)
		}
		keep := prev
		if prev != nil && !sameIdentity(prev.cfg, ac) {
			keep = nil
			retired = append(retired, prev)
			if prev.cfg.Issuer != ac.Issuer || prev.cfg.ClientID != ac.ClientID {
				ends = append(ends, ending{ac.Name, &ac})
			}
		}
		a, err := newApp(ac, g.parts, keep)
		if err != nil {
			return AppChanges{}, fmt.Errorf("app %s: %w", ac.Name, err)
		}
		if keep == nil {
			fresh = append(fresh, a)
		}
		apps = append(apps, a)
	}
	for _, a := range old.apps { // removed, in the old order
		if byName[a.cfg.Name] != nil {
			ch.Removed = append(ch.Removed, a.cfg.Name)
			retired = append(retired, a)
			ends = append(ends, ending{a.cfg.Name, nil})
		}
	}
	g.cur.Store(g.snapshot(apps, cfg.Server))
	g.events.setCaps(cfg.Server.ConnLimits)
	g.sessions.SetMetricApps(g.appNames())

	// The retired apps' logout clients are still registered here, so
	// that the ended sessions' refresh tokens are revoked where they were
	// issued; then they go, and the new discoveries register theirs.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	for _, e := range ends {
		n, err := g.endSessions(ectx, e.app, e.cfg)
		ch.SessionsEnded += n
		if err != nil {
			// Those left are refused all the same: their app is gone, or
			// their issuer is not the app's (appSession.load); the store
			// drops them at their expiry.
			g.logger.Error("configuration reload: sessions not ended", "app", e.app, "err", err)
		}
	}
	for _, a := range retired {
		a.disc.halt()
		g.logout.Unregister(a.cfg.Name)
	}
	if g.ctx != nil {
		for _, a := range fresh {
			a.startDiscovery(g.ctx, &g.wg, g.logger)
		}
	}
	return ch, nil
}

// endSessions ends the app's sessions with cause "config": all of them
// when the app was removed (cfg nil), else those not minted for cfg's
// issuer and client_id (the ID token's aud), so that with replicas a
// later replica's reload spares the sessions an earlier one created for
// the new client.
func (g *Gateway) endSessions(ctx context.Context, app string, cfg *AppConfig) (int, error) {
	list, err := g.sessions.List(ctx, session.Filter{App: app})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		if cfg != nil && mintedFor(s, cfg.Issuer, cfg.ClientID) {
			continue
		}
		switch _, err := g.sessions.End(ctx, s.ID, session.CauseConfig); {
		case err == nil:
			n++
		case !errors.Is(err, session.ErrNotFound):
			return n, err
		}
	}
	return n, nil
}

// mintedFor reports whether the session's ID token was issued by issuer
// to clientID (its aud, a string or an array). Unreadable claims: no.
func mintedFor(s *session.Session, issuer, clientID string) bool {
	var c struct {
		Aud json.RawMessage `json:"aud"`
	}
	if s.Issuer != issuer || json.Unmarshal(s.Claims, &c) != nil {
		return false
	}
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return one == clientID
	}
	var many []string
	return json.Unmarshal(c.Aud, &many) == nil && slices.Contains(many, clientID)
}

// appConfigEqual reports whether a reload leaves the app as it is.
func appConfigEqual(a, b AppConfig) bool {
	return sameIdentity(a, b) && reflect.DeepEqual(routing(a), routing(b))
}

// routing is what of an app's config only its routes and proxies use.
func routing(c AppConfig) AppConfig {
	return AppConfig{
		Name: c.Name, Hosts: c.Hosts, Frontend: c.Frontend, APIs: c.APIs, Downstream: c.Downstream,
		LogoutTokenTyp: c.LogoutTokenTyp, PostLogoutRedirect: c.PostLogoutRedirect,
		LogoutConfig: LogoutConfig{FrontchannelSessionRequired: c.FrontchannelSessionRequired},
	}
}

// sameIdentity reports whether two configs of an app have the same OIDC
// settings: everything that discovery, the verifiers, the refresher and
// the client registration are built from. Only the routing keys may
// differ.
func sameIdentity(a, b AppConfig) bool {
	if !sameKey(a.DecryptionKey, b.DecryptionKey) || !sameKey(a.ClientAssertionKey, b.ClientAssertionKey) {
		return false
	}
	return reflect.DeepEqual(identity(a), identity(b))
}

// identity is an app's config without its routing keys and loaded keys
// (compared by sameKey).
func identity(c AppConfig) AppConfig {
	c.Hosts, c.Frontend, c.APIs, c.Downstream = nil, "", nil, nil
	c.LogoutTokenTyp, c.PostLogoutRedirect, c.FrontchannelSessionRequired = "", "", false
	c.DecryptionKey, c.ClientAssertionKey = nil, nil
	return c
}

// sameKey compares two loaded private keys (nil is only nil's).
func sameKey(a, b crypto.Signer) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	k, ok := a.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && k.Equal(b)
}

// reload is POST /admin/reload: 200 with the report when the new
// configuration runs, 422 when it was refused (with every problem), 500
// when it could not be applied.
func (g *Gateway) reload(c echo.Context) error {
	rep := g.reloader.Reload(c.Request().Context())
	code := http.StatusOK
	switch rep.Result {
	case ReloadInvalid:
		code = http.StatusUnprocessableEntity
	case ReloadError:
		code = http.StatusInternalServerError
	}
	return c.JSON(code, rep)
}

// lastReloadLine is /readyz's line about the last reload ("" before the
// first).
func (g *Gateway) lastReloadLine() string {
	if g.reloader == nil {
		return ""
	}
	r := g.reloader.LastReload()
	if r == nil {
		return ""
	}
	return fmt.Sprintf("last reload: %s %s\n", r.Time.UTC().Format(time.RFC3339), r.Result)
}

// limiter is one route kind's rate limiter and its limit.
type limiter struct {
	limit Limit
	mw    echo.MiddlewareFunc
}

// limiter returns the rate limiter of a route kind: the running one while
// its limit is unchanged, so that a reload keeps the clients' buckets.
func (g *Gateway) limiter(kind string, l Limit) echo.MiddlewareFunc {
	if cur, ok := g.limiters[kind]; ok && cur.limit == l {
		return cur.mw
	}
	if g.limiters == nil {
		g.limiters = map[string]limiter{}
	}
	g.limiters[kind] = limiter{limit: l, mw: rateLimit(l)}
	return g.limiters[kind].mw
}
