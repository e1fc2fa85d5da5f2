package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bffgate/bffgate/session"
)

// maxUserinfoBytes bounds a userinfo answer: its claims are stored in the
// session record.
const maxUserinfoBytes = 16 << 10

// idTokenOnly are the claims only the ID token speaks for: a userinfo
// answer never replaces them (nor adds sid, which /bff/user never shows).
var idTokenOnly = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce",
	"acr", "amr", "azp", "sid", "at_hash", "c_hash", "jti"}

// newUserinfoVerifier verifies signed userinfo answers (Core 1.0 §5.3.2:
// iss the issuer, aud the client id) with the app's key set; they need
// no exp.
func newUserinfoVerifier(issuer, clientID string, keys oidc.KeySet, algs []string) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(issuer, keys, &oidc.Config{ClientID: clientID, SupportedSigningAlgs: algs, SkipExpiryCheck: true})
}

// fetchUserinfo calls the IdP's userinfo endpoint with the access token
// and returns its claims, which must be about sub (the ID token's).
func fetchUserinfo(ctx context.Context, client *http.Client, p *provider, accessToken, sub string) (map[string]json.RawMessage, error) {
	endpoint := p.oidc.UserInfoEndpoint()
	if endpoint == "" {
		return nil, errors.New("userinfo: the IdP has no userinfo_endpoint")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json, application/jwt")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserinfoBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("userinfo: read: %w", err)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("userinfo: status %d", resp.StatusCode)
	case len(body) > maxUserinfoBytes:
		return nil, fmt.Errorf("userinfo: answer larger than %d bytes", maxUserinfoBytes)
	}
	var claims map[string]json.RawMessage
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/jwt" {
		tok, err := p.userinfo.Verify(ctx, string(body))
		if err != nil {
			return nil, fmt.Errorf("userinfo: signed answer: %w", err)
		}
		if err := tok.Claims(&claims); err != nil {
			return nil, fmt.Errorf("userinfo: signed answer: %w", err)
		}
	} else if err := json.Unmarshal(body, &claims); err != nil {
		return nil, fmt.Errorf("userinfo: not a JSON object: %w", err)
	}
	var got string
	if err := json.Unmarshal(claims["sub"], &got); err != nil || got != sub {
		return nil, errUserinfoSub // Core 1.0 §5.3.4
	}
	return claims, nil
}

// errUserinfoSub: the userinfo answer is about another user than the ID
// token (or the session).
var errUserinfoSub = errors.New("userinfo: its sub is not the ID token's")

// refreshedClaims is the Refresher's Claims hook (userinfo_on_refresh):
// the session's claims with a fresh userinfo answer merged in. A foreign
// sub ends the session; any other failure keeps the claims it has.
func (a *app) refreshedClaims(ctx context.Context, s *session.Session, accessToken string, logger *slog.Logger) (json.RawMessage, error) {
	p := a.disc.get()
	if p == nil {
		return nil, nil
	}
	ui, err := fetchUserinfo(a.userinfoDPoP(ctx, s, accessToken), a.idp, p, accessToken, s.Subject)
	switch {
	case errors.Is(err, errUserinfoSub):
		return nil, err
	case err != nil:
		logger.WarnContext(ctx, "userinfo after token refresh; the session keeps its claims", "app", s.App, "err", err)
		return nil, nil
	}
	claims := map[string]json.RawMessage{}
	if len(s.Claims) > 0 {
		if err := json.Unmarshal(s.Claims, &claims); err != nil {
			return nil, nil // not ours to fix here; /bff/user reports it
		}
	}
	mergeUserinfo(claims, ui)
	raw, err := json.Marshal(claims)
	if err != nil {
		return nil, nil
	}
	return raw, nil
}

// mergeUserinfo adds the userinfo claims ui to the ID token's claims,
// which keep the claims only an ID token speaks for.
func mergeUserinfo(claims, ui map[string]json.RawMessage) {
	for k, v := range ui {
		if !slices.Contains(idTokenOnly, k) {
			claims[k] = v
		}
	}
}
