package logout

import (
	"context"
	"crypto/subtle"
	"errors"

	"github.com/bffgate/bffgate/session"
)

// ErrHandleMismatch means an RP-initiated logout request did not carry
// the session's logout handle: it may be a cross-site request, so the
// session is not ended.
var ErrHandleMismatch = errors.New("logout handle does not match the session")

// Handle is a session's logout handle, the sid parameter of its logout
// URL: the IdP's sid (which the SPA may know from the ID token), else a
// hash of the session id. A cross-site page cannot learn it.
func Handle(s *session.Session) string {
	if s.SID != "" {
		return s.SID
	}
	return session.Hash(s.ID)
}

// RPInitiated ends sess, the session of the browser that asked to log out
// (RP-Initiated Logout 1.0), if handle is its logout handle; otherwise it
// returns ErrHandleMismatch. A session already gone counts as ended. The
// caller then sends the browser to the IdP's end_session_endpoint.
func (s *Service) RPInitiated(ctx context.Context, sess *session.Session, handle string) error {
	if subtle.ConstantTimeCompare([]byte(handle), []byte(Handle(sess))) != 1 {
		return ErrHandleMismatch
	}
	_, err := s.endOne(ctx, sess.ID, session.CauseRPInitiated)
	return err
}
