package logout

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"

	"github.com/bffgate/bffgate/internal/spans"
	"github.com/bffgate/bffgate/session"
)

// ErrAdminRequest means an admin request selects no sessions, or more
// than one way.
var ErrAdminRequest = errors.New(`give exactly one of {"app","sub"}, {"sid"} or {"session"}, each at most 255 bytes`)

// AdminRequest selects the sessions an operator ends: an app's Subject,
// a SID (in App, or in every app), or Session, the hashed session id
// shown by the session list (in App, or in any app).
type AdminRequest struct {
	App     string
	Subject string
	SID     string
	Session string
}

// Admin ends the sessions req selects with cause admin, so downstream
// apps, open tabs and the IdP's refresh tokens are told as for any
// logout. apps are the configured app names, searched for a Session
// handle. It returns how many sessions ended, ErrAdminRequest for a bad
// selection, or a *StoreError.
func (s *Service) Admin(ctx context.Context, req AdminRequest, apps []string) (n int, err error) {
	ctx, span := spans.Start(ctx, tracerName, "logout.admin", attribute.String("bffgate.app", req.App))
	defer func() { span.SetAttributes(attribute.Int("bffgate.sessions_ended", n)); spans.End(span, err) }()
	for _, v := range []string{req.App, req.Subject, req.SID, req.Session} {
		if len(v) > MaxIdentifierLen {
			return 0, ErrAdminRequest
		}
	}
	switch {
	case req.Session != "" && req.Subject == "" && req.SID == "":
		n, err = s.endHandle(ctx, req.App, req.Session, apps)
	case req.SID != "" && req.Subject == "" && req.Session == "":
		n, err = s.endFiltered(ctx, session.Filter{App: req.App, SID: req.SID})
	case req.Subject != "" && req.App != "" && req.SID == "" && req.Session == "":
		n, err = s.endFiltered(ctx, session.Filter{App: req.App, Subject: req.Subject})
	default:
		return 0, ErrAdminRequest
	}
	if err != nil {
		return n, &StoreError{Err: err}
	}
	return n, nil
}

// endFiltered ends the sessions of a sid or of an app's sub, by (iss,
// sid) or (iss, sub) so that tombstones keep them out.
func (s *Service) endFiltered(ctx context.Context, f session.Filter) (int, error) {
	list, err := s.sessions.List(ctx, f)
	if err != nil {
		return 0, err
	}
	type key struct{ app, iss string }
	seen := map[key]bool{}
	ended := 0
	for _, sess := range list {
		k := key{sess.App, sess.Issuer}
		if seen[k] {
			continue
		}
		seen[k] = true
		var out []*session.Session
		if f.SID != "" {
			out, err = s.sessions.EndBySID(ctx, sess.App, sess.Issuer, f.SID, "", session.CauseAdmin)
		} else {
			out, err = s.sessions.EndBySub(ctx, sess.App, sess.Issuer, f.Subject, session.CauseAdmin)
		}
		if err != nil {
			return ended, err
		}
		ended += len(out)
	}
	return ended, nil
}

// endHandle ends the session whose hashed id is handle.
func (s *Service) endHandle(ctx context.Context, app, handle string, apps []string) (int, error) {
	for _, name := range apps {
		if app != "" && name != app {
			continue
		}
		list, err := s.sessions.List(ctx, session.Filter{App: name})
		if err != nil {
			return 0, err
		}
		for _, sess := range list {
			if session.Hash(sess.ID) != handle {
				continue
			}
			if _, err := s.sessions.End(ctx, sess.ID, session.CauseAdmin); err != nil && !errors.Is(err, session.ErrNotFound) {
				return 0, err
			}
			return 1, nil
		}
	}
	return 0, nil
}
