package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
)

// Downstream is one app behind the gateway that is told when a session of
// its gateway app ends ([[apps.downstream]]).
type Downstream struct {
	App  string // the gateway app whose sessions it follows
	Name string // stable name, a metrics label (e.g. "demo/0")
	// BackchannelURI receives signed logout tokens (empty: none).
	BackchannelURI string
	// FrontchannelURI is loaded in an iframe by the gateway's logout pages
	// (empty: none).
	FrontchannelURI string
	Audience        string // aud of its logout tokens
	// SessionRequired adds iss and sid to the front-channel URI.
	SessionRequired bool
	// Always tells it of every session end; otherwise only of sessions
	// that used Upstream ("if_used").
	Always   bool
	Upstream string
	// GatewaySID sends the gateway's opaque session handle as sid instead
	// of the IdP's sid.
	GatewaySID bool
	Typ        string // typ header of its logout tokens; default logout+jwt
}

// Ended describes a session that ended, as the fan-out needs it.
type Ended struct {
	App, Subject, SID string
	// Handle is the gateway's opaque handle of the session.
	Handle string
	// Used reports whether the session called the named upstream.
	Used func(name string) bool
}

// Fanout turns ended sessions into notifications for the downstream apps.
type Fanout struct {
	issuer   string
	notifier *Notifier
	byApp    map[string][]Downstream
	logger   *slog.Logger
}

// NewFanout returns a Fanout for the downstream apps. Their logout
// tokens are signed by the notifier's Sign hook.
func NewFanout(issuer string, notifier *Notifier, downstreams []Downstream, logger *slog.Logger) (*Fanout, error) {
	f := &Fanout{issuer: issuer, notifier: notifier, byApp: map[string][]Downstream{}, logger: logger}
	var errs []error
	for _, d := range downstreams {
		if d.Audience == "" || (d.BackchannelURI == "" && d.FrontchannelURI == "") {
			errs = append(errs, fmt.Errorf("downstream %s: needs an audience and a logout URI", d.Name))
		}
		f.byApp[d.App] = append(f.byApp[d.App], d)
	}
	return f, errors.Join(errs...)
}

// targets returns the downstream apps to tell of e.
func (f *Fanout) targets(e Ended) []Downstream {
	return slices.DeleteFunc(slices.Clone(f.byApp[e.App]), func(d Downstream) bool {
		return !d.Always && (e.Used == nil || !e.Used(d.Upstream))
	})
}

func (d Downstream) sid(e Ended) string {
	if d.GatewaySID {
		return e.Handle
	}
	return e.SID
}

// SessionEnded queues a notification for each matching back-channel
// receiver, with the claims of its logout token and a new jti; the
// notifier signs it at delivery (NotifierConfig.Sign). All of them
// together hold the caller at most NotifierConfig.EnqueueTimeout (see
// Notifier.Enqueue), and never fail the logout: problems are logged and
// counted by the notifier.
func (f *Fanout) SessionEnded(ctx context.Context, e Ended) {
	ctx, cancel := f.notifier.enqueueContext(ctx) // one bound for every receiver
	defer cancel()
	for _, d := range f.targets(e) {
		if d.BackchannelURI == "" {
			continue
		}
		sid := d.sid(e)
		if e.Subject == "" && sid == "" {
			continue
		}
		jti := NewJTI()
		f.notifier.Enqueue(ctx, Notification{
			App: e.App, Target: d.Name, URL: d.BackchannelURI, JTI: jti,
			Claims: LogoutClaims{Audience: d.Audience, Subject: e.Subject, SID: sid, JTI: jti, Typ: d.Typ},
		})
	}
}

// SignNotification signs n's logout token from n.Claims (same jti, fresh
// iat and exp); it fits NotifierConfig.Sign.
func (s *Signer) SignNotification(n Notification) (string, error) {
	return s.LogoutToken(n.Claims)
}

// FrontchannelURLs returns the front-channel logout URLs to load, in
// iframes, for the ended session e (with iss and sid where required).
func (f *Fanout) FrontchannelURLs(e Ended) []string {
	var out []string
	for _, d := range f.targets(e) {
		if d.FrontchannelURI == "" {
			continue
		}
		u, err := url.Parse(d.FrontchannelURI)
		if err != nil {
			continue
		}
		if d.SessionRequired {
			q := u.Query()
			q.Set("iss", f.issuer)
			q.Set("sid", d.sid(e))
			u.RawQuery = q.Encode()
		}
		out = append(out, u.String())
	}
	return out
}
