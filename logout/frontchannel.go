package logout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bffgate/bffgate/session"
)

var errNotReady = errors.New("identity provider discovery not done")

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
func (s *Service) Frontchannel(ctx context.Context, app, iss, sid string) ([]*session.Session, error) {
	c := s.client(app)
	if c == nil {
		return nil, fmt.Errorf("app %s: %w", app, errNotReady)
	}
	if iss != c.Issuer {
		return nil, invalid(ReasonIss, "iss is not this app's issuer", nil)
	}
	if sid == "" {
		return nil, invalid(ReasonSubSIDMissing, "sid is empty", nil)
	}
	ended, err := s.sessions.EndBySID(ctx, app, iss, sid, "", session.CauseFrontchannel)
	if err != nil {
		return nil, &StoreError{Err: err}
	}
	return ended, nil
}

// FrontchannelCookie ends the session whose id the app's session cookie
// carried, for a front-channel request without iss and sid. It returns
// nil if the session is already gone.
func (s *Service) FrontchannelCookie(ctx context.Context, id string) (*session.Session, error) {
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
