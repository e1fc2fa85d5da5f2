package logout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/attribute"

	"github.com/bffgate/bffgate/internal/spans"
	"github.com/bffgate/bffgate/session"
)

var errNotReady = errors.New("identity provider discovery not done")

// FrontchannelMetric returns the front-channel request counter.
func (s *Service) FrontchannelMetric() *prometheus.CounterVec { return s.front }

// client returns the registered client of app, or nil.
func (s *Service) client(app string) *Client {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if i := slices.IndexFunc(s.clients, func(c *Client) bool { return c.App == app }); i >= 0 {
		return s.clients[i]
	}
	return nil
}

// Frontchannel ends the app's sessions of (iss, sid) from a front-channel
// logout request (Front-Channel Logout 1.0 §2, the form that works
// without cookies). iss must be the app's issuer; sessions already gone
// count as success.
//
// The request is unauthenticated, so it stores nothing unless it ends a
// session: a sid that no live session has leaves no tombstone (counted
// as no_session). A sid that did end sessions is tombstoned as a
// back-channel logout would, so a late login callback of that IdP
// session is refused. The trade-off: a login whose callback arrives
// after the IdP's front-channel request for that very IdP session (a
// window of seconds, while no gateway session exists yet) survives it,
// until the next back-channel logout, expiry or sign-out. Back-channel
// tokens, which are signed, always tombstone.
func (s *Service) Frontchannel(ctx context.Context, app, iss, sid string) (_ []*session.Session, err error) {
	ctx, span := spans.Start(ctx, tracerName, "logout.frontchannel", attribute.String("bffgate.app", app))
	defer func() { spans.End(span, err) }()
	c := s.client(app)
	if c == nil {
		return nil, fmt.Errorf("app %s: %w", app, errNotReady)
	}
	ended, err := s.frontchannel(ctx, c, iss, sid)
	return ended, s.countFront(ctx, app, ended, err)
}

// FrontchannelSID is Frontchannel for a request with sid and no iss, as
// Microsoft Entra ID sends: with the app's FrontchannelSIDOnly switch its
// issuer is taken as iss, with the same checks and the same no-state rule
// for an unknown sid; without it the request is refused (ReasonIssMissing)
// and the log names the switch, once.
func (s *Service) FrontchannelSID(ctx context.Context, app, sid string) (_ []*session.Session, err error) {
	ctx, span := spans.Start(ctx, tracerName, "logout.frontchannel", attribute.String("bffgate.app", app))
	defer func() { spans.End(span, err) }()
	c := s.client(app)
	if c == nil {
		return nil, fmt.Errorf("app %s: %w", app, errNotReady)
	}
	if !c.FrontchannelSIDOnly {
		err := invalid(ReasonIssMissing, "iss and sid must be sent together", nil)
		if sid != "" && len(sid) <= MaxIdentifierLen {
			err.Switch, err.Fix = SwitchFrontchannelSIDOnly, SwitchFrontchannelSIDOnly+" = true"
		}
		return nil, s.countFront(ctx, app, nil, err)
	}
	ended, err := s.frontchannel(ctx, c, c.Issuer, sid)
	return ended, s.countFront(ctx, app, ended, err)
}

// ReasonIssMissing is the rejection of a front-channel request with sid
// and no iss, from an app without frontchannel_sid_only.
const ReasonIssMissing = "iss_missing"

// countFront counts a front-channel request by its result, logs a
// rejection's settings hint once, and returns err.
func (s *Service) countFront(ctx context.Context, app string, ended []*session.Session, err error) error {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		s.front.WithLabelValues(app, "rejected", ve.Switch).Inc()
		s.logHint(ctx, "a front-channel logout request was", app, ve)
	case err != nil:
	case len(ended) == 0:
		s.front.WithLabelValues(app, "no_session", "").Inc()
	default:
		s.front.WithLabelValues(app, "ended", "").Inc()
	}
	return err
}

func (s *Service) frontchannel(ctx context.Context, c *Client, iss, sid string) ([]*session.Session, error) {
	if len(sid) > MaxIdentifierLen || (len(iss) > MaxIdentifierLen && iss != c.Issuer) {
		return nil, invalid(ReasonTooLong, fmt.Sprintf("iss and sid must be at most %d bytes", MaxIdentifierLen), nil)
	}
	if iss != c.Issuer {
		return nil, invalid(ReasonIss, "iss is not this app's issuer", nil)
	}
	if sid == "" {
		return nil, invalid(ReasonSubSIDMissing, "sid is empty", nil)
	}
	live, err := s.sessions.List(ctx, session.Filter{App: c.App, Issuer: iss, SID: sid})
	if err != nil {
		return nil, &StoreError{Err: err}
	}
	if len(live) == 0 {
		return nil, nil // nothing to end, nothing stored
	}
	ended, err := s.sessions.EndBySID(ctx, c.App, iss, sid, "", session.CauseFrontchannel)
	if err != nil {
		return nil, &StoreError{Err: err}
	}
	return ended, nil
}

// FrontchannelCookie ends the session whose id the app's session cookie
// carried, for a front-channel request without iss and sid. It returns
// nil if the session is already gone.
func (s *Service) FrontchannelCookie(ctx context.Context, id string) (_ *session.Session, err error) {
	ctx, span := spans.Start(ctx, tracerName, "logout.frontchannel")
	defer func() { spans.End(span, err) }()
	return s.endOne(ctx, id, session.CauseFrontchannel)
}

// endOne ends one session by id; one already gone is no error.
func (s *Service) endOne(ctx context.Context, id string, cause session.Cause) (*session.Session, error) {
	ended, err := s.sessions.End(ctx, id, cause)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, &StoreError{Err: err}
	}
	return ended, nil
}
