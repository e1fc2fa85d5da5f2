package proxy

import (
	"net/http"
	"strings"

	"github.com/bffgate/bffgate/internal/dpop"
	"github.com/bffgate/bffgate/session"
)

// descDPoPOnly answers a call to an API with dpop = false whose session
// holds a DPoP-bound token.
const descDPoPOnly = "this API takes bearer tokens, but the session's token is bound to its DPoP key"

func isDPoP(tokenType string) bool { return strings.EqualFold(tokenType, "DPoP") }

// bindDPoP returns r under which the transport sends tok as
// "Authorization: DPoP" with a fresh proof of s's key. If it cannot (an
// API with dpop = false, or a key that does not parse) it answers 502
// and returns false.
func (p *Proxy) bindDPoP(w http.ResponseWriter, r *http.Request, s *session.Session, tok string) (*http.Request, bool) {
	ctx := r.Context()
	if !p.cfg.DPoP {
		p.logger.ErrorContext(ctx, "dpop: the session's token is DPoP-bound and this API has dpop = false", "app", s.App)
		p.cfg.WriteError(w, r, http.StatusBadGateway, codeBadGateway, descDPoPOnly)
		return r, false
	}
	key, err := p.cfg.DPoPKeys.Get(s.ID, s.DPoPKey)
	if err != nil {
		p.logger.ErrorContext(ctx, "dpop: session key", "app", s.App, "err", err)
		p.cfg.WriteError(w, r, http.StatusBadGateway, codeBadGateway, descNoToken)
		return r, false
	}
	delete(r.Header, "Authorization") // the transport sets it with the proof
	return r.WithContext(dpop.WithToken(ctx, key, tok)), true
}
