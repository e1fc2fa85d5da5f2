package testop

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// authorize auto-approves the current user. Errors about the client or the
// redirect_uri answer 400; all others redirect back with error and state.
func (op *OP) authorize(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.authorizes = append(op.authorizes, r.URL.Query())
	q, refused := op.authorizeParams(r.URL.Query())
	if refused != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", refused)
		return
	}
	clientID, redirectURI, state := q.Get("client_id"), q.Get("redirect_uri"), q.Get("state")
	c := op.clients[clientID]
	if c == nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unknown client_id")
		return
	}
	if !slices.Contains(c.redirects, redirectURI) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri not registered")
		return
	}
	back, _ := url.Parse(redirectURI)
	v := back.Query()
	v.Set("state", state)
	if iss := op.responseISS(); iss != "" {
		v.Set("iss", iss)
	}
	fail := func(code, desc string) {
		v.Set("error", code)
		v.Set("error_description", desc)
		back.RawQuery = v.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	}
	switch {
	case op.failAuthorize != "":
		code := op.failAuthorize
		op.failAuthorize = ""
		fail(code, "failure requested by the test")
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "scope must contain openid")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE with S256 is required")
	case state == "" || q.Get("nonce") == "":
		fail("invalid_request", "state and nonce are required")
	default:
		sid := ""
		if !op.cfg.OmitSID {
			sid = random(16)
			op.lastSID = sid
		}
		code := random(24)
		op.codes[code] = &grant{
			clientID: clientID, redirectURI: redirectURI, challenge: q.Get("code_challenge"),
			nonce: q.Get("nonce"), sub: op.sub, sid: sid, claims: maps.Clone(op.extra),
			expires: time.Now().Add(time.Minute),
		}
		v.Set("code", code)
		v.Set("session_state", sessionState(clientID, redirectURI, sid))
		back.RawQuery = v.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	}
}

// sessionState computes Session Management 1.0 §3.2's salted hash of
// client_id, the redirect origin and the OP's browser state.
func sessionState(clientID, redirectURI, opState string) string {
	origin := redirectURI
	if u, err := url.Parse(redirectURI); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	salt := random(8)
	sum := sha256.Sum256([]byte(clientID + " " + origin + " " + opState + " " + salt))
	return hex.EncodeToString(sum[:]) + "." + salt
}

func (op *OP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	op.tokenCalls.Add(1)
	clientID := op.clientAuth(w, r, "token")
	if clientID == "" {
		return
	}
	jkt, ok := op.checkDPoP(w, r, "token", "")
	if !ok {
		return
	}
	f := r.PostForm
	if f.Get("grant_type") == "client_credentials" {
		op.clientCredentials(w, r, clientID)
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	var g *grant
	switch f.Get("grant_type") {
	case "authorization_code":
		g = op.codes[f.Get("code")]
		delete(op.codes, f.Get("code")) // single use, even when the checks fail
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		switch {
		case g == nil || g.clientID != clientID || time.Now().After(g.expires):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or used code")
			return
		case g.redirectURI != f.Get("redirect_uri"):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri mismatch")
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier mismatch")
			return
		}
	case "refresh_token":
		g = op.refresh[f.Get("refresh_token")]
		if op.failRefresh || g == nil || g.clientID != clientID || g.jkt != "" && g.jkt != jkt {
			op.rejectedRefreshes.Add(1)
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token rejected")
			return
		}
		delete(op.refresh, f.Get("refresh_token")) // rotation
		op.refreshCount.Add(1)
		g = &grant{clientID: g.clientID, sub: g.sub, sid: g.sid, claims: g.claims, jkt: g.jkt}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type")
		return
	}
	now := time.Now()
	at, rt := random(24), random(24)
	if jkt != "" {
		g.jkt = jkt
	}
	tokenType := "Bearer"
	if g.jkt != "" {
		tokenType = "DPoP"
	}
	acc := *g
	acc.expires = now.Add(op.cfg.AccessTokenTTL)
	op.access[at] = &acc
	op.refresh[rt] = g
	claims := map[string]any{
		"iss": op.URL, "sub": g.sub, "aud": clientID, "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "name": "User " + g.sub, "email": g.sub + "@example.com",
	}
	maps.Copy(claims, g.claims)
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	if g.sid != "" {
		claims["sid"] = g.sid
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "token_type": tokenType, "refresh_token": rt,
		"expires_in": int(op.cfg.AccessTokenTTL.Seconds()), "scope": "openid profile email",
		"id_token": op.Sign(claims, SignOpts{Alg: op.cfg.IDTokenAlg}),
	})
}

func (op *OP) userinfo(w http.ResponseWriter, r *http.Request) {
	tok, isDPoP, ok := accessTokenOf(r)
	op.mu.Lock()
	g := op.access[tok]
	op.mu.Unlock()
	var jkt string
	if isDPoP {
		if jkt, ok = op.checkDPoP(w, r, "userinfo", tok); !ok {
			return
		}
	}
	if !ok || g == nil || time.Now().After(g.expires) || g.jkt != jkt {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "unknown or expired access token")
		return
	}
	claims := map[string]any{"sub": g.sub, "email": g.sub + "@example.com"}
	maps.Copy(claims, g.claims)
	op.writeUserinfo(w, claims)
}
