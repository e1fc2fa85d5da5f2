package testop

import "net/http"

// UserinfoOpts shape the userinfo responses (SetUserinfo).
type UserinfoOpts struct {
	// Extra claims only userinfo serves (not in the ID token).
	Extra map[string]any
	// Sub, if set, replaces the user's sub (a mismatch with the ID token).
	Sub string
	// Signed answers application/jwt signed with the OP's RSA key, with
	// iss and aud (Audience, default the client id) added.
	Signed   bool
	Audience string
}

// SetUserinfo shapes the userinfo responses from now on.
func (op *OP) SetUserinfo(o UserinfoOpts) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.ui = o
}

// writeUserinfo answers a userinfo request with claims, shaped by the
// UserinfoOpts.
func (op *OP) writeUserinfo(w http.ResponseWriter, claims map[string]any) {
	op.mu.Lock()
	o := op.ui
	op.mu.Unlock()
	for k, v := range o.Extra {
		claims[k] = v
	}
	if o.Sub != "" {
		claims["sub"] = o.Sub
	}
	if !o.Signed {
		writeJSON(w, http.StatusOK, claims)
		return
	}
	claims["iss"] = op.URL
	claims["aud"] = op.cfg.ClientID
	if o.Audience != "" {
		claims["aud"] = o.Audience
	}
	w.Header().Set("Content-Type", "application/jwt")
	_, _ = w.Write([]byte(op.Sign(claims, SignOpts{})))
}
