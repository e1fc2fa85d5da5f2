package testop

import (
	"net/http"
	"net/url"
	"slices"
)

// revoke is RFC 7009: it records the token and answers 200 whatever it was.
func (op *OP) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	if op.clientAuth(w, r, "revoke") == "" {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	op.mu.Lock()
	op.revoked = append(op.revoked, tok)
	delete(op.access, tok)
	delete(op.refresh, tok)
	op.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// endSession is RP-Initiated Logout 1.0 (GET or POST): it records the
// parameters, then redirects to post_logout_redirect_uri with state, or
// shows a page when there is none (or it is not registered).
func (op *OP) endSession(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	q := r.Form
	op.mu.Lock()
	op.endSessions = append(op.endSessions, q)
	op.mu.Unlock()
	target := q.Get("post_logout_redirect_uri")
	allowed := len(op.cfg.PostLogoutRedirectURLs) == 0 || slices.Contains(op.cfg.PostLogoutRedirectURLs, target)
	u, err := url.Parse(target)
	if target == "" || !allowed || err != nil || !u.IsAbs() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("You are signed out.\n"))
		return
	}
	if state := q.Get("state"); state != "" {
		v := u.Query()
		v.Set("state", state)
		u.RawQuery = v.Encode()
	}
	http.Redirect(w, r, u.String(), http.StatusFound)
}
