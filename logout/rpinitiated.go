package logout

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"

	"go.opentelemetry.io/otel/attribute"

	"github.com/bffgate/bffgate/internal/spans"
	"github.com/bffgate/bffgate/session"
)

// ErrHandleMismatch means an RP-initiated logout request did not carry
// the session's logout handle: it may be a cross-site request, so the
// session is not ended.
var ErrHandleMismatch = errors.New("logout handle does not match the session")

// Handle is a session's logout handle, the sid parameter of its logout
// URL: an HMAC-SHA256 of the session id under the handle key (derived
// from the session secret), 128 bits in base64url. It is neither the
// IdP's sid, which would end the IdP session through front-channel
// logout and must not reach the browser, nor the hashed id that logs and
// the admin list show. A cross-site page cannot learn it; every replica
// with the same secret computes the same handle.
func (s *Service) Handle(sess *session.Session) string {
	m := hmac.New(sha256.New, s.handleKey)
	m.Write([]byte(sess.ID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// RPInitiated ends sess, the session of the browser that asked to log out
// (RP-Initiated Logout 1.0), if handle is its logout handle; otherwise it
// returns ErrHandleMismatch. A session already gone counts as ended. The
// caller then sends the browser to the IdP's end_session_endpoint.
func (s *Service) RPInitiated(ctx context.Context, sess *session.Session, handle string) (err error) {
	ctx, span := spans.Start(ctx, tracerName, "logout.rp_initiated", attribute.String("bffgate.app", sess.App), attribute.String("bffgate.session_hash", session.Hash(sess.ID)))
	defer func() { spans.End(span, err) }()
	if len(handle) > MaxIdentifierLen || subtle.ConstantTimeCompare([]byte(handle), []byte(s.Handle(sess))) != 1 {
		return ErrHandleMismatch
	}
	_, err = s.endOne(ctx, sess.ID, session.CauseRPInitiated)
	return err
}
