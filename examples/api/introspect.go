package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/patrickmn/go-cache"
	"golang.org/x/oauth2"
)

// errInactive means the IdP says the token is not (or no longer) active.
var errInactive = errors.New("token is not active")

// tokenInfo is what the API learns about an active access token.
type tokenInfo struct {
	Subject  string
	ClientID string
	Scope    string
	Name     string // from userinfo, best effort
	Expiry   time.Time
	// Audience is the resource a JWT access token was issued for; JWT
	// says the token was one (verified locally, not introspected).
	Audience string
	JWT      bool
	// JKT is the thumbprint of the DPoP key the token is bound to
	// (cnf.jkt, RFC 9449), or "" for a bearer token.
	JKT string
}

type introspectorConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// CacheTTL bounds how long an active result is reused; it is also never
	// reused past the token's exp. Zero disables the cache.
	CacheTTL time.Duration
}

// introspector validates opaque access tokens at the IdP's RFC 7662
// introspection endpoint, found by OpenID discovery on first use (so the API
// may start before the IdP).
type introspector struct {
	cfg    introspectorConfig
	client *http.Client
	cache  *cache.Cache // sha256(token) -> tokenInfo, positive results only

	mu       sync.Mutex
	provider *oidc.Provider
	endpoint string
}

func newIntrospector(cfg introspectorConfig, client *http.Client) *introspector {
	return &introspector{
		cfg:    cfg,
		client: client,
		cache:  cache.New(cfg.CacheTTL, time.Minute),
	}
}

// Verify returns the token's details, or errInactive, or another error when
// the IdP could not be asked.
func (in *introspector) Verify(ctx context.Context, token string) (tokenInfo, error) {
	key := cacheKey(token)
	if v, ok := in.cache.Get(key); ok {
		return v.(tokenInfo), nil
	}
	provider, endpoint, err := in.discover(ctx)
	if err != nil {
		return tokenInfo{}, err
	}
	info, err := in.introspect(ctx, endpoint, token)
	if err != nil {
		return tokenInfo{}, err
	}
	info.Name = in.userName(ctx, provider, token)
	in.remember(key, info)
	return info, nil
}

// forgetSubject drops the cached results of sub's tokens, so that a
// session that ended is checked at the IdP again on its next request.
func (in *introspector) forgetSubject(sub string) {
	for key, item := range in.cache.Items() {
		if info, ok := item.Object.(tokenInfo); ok && info.Subject == sub {
			in.cache.Delete(key)
		}
	}
}

func cacheKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (in *introspector) remember(key string, info tokenInfo) {
	ttl := in.cfg.CacheTTL
	if !info.Expiry.IsZero() {
		ttl = min(ttl, time.Until(info.Expiry))
	}
	if ttl > 0 {
		in.cache.Set(key, info, ttl)
	}
}

// discover runs OpenID discovery once it succeeds; failures are retried on
// the next request.
func (in *introspector) discover(ctx context.Context) (*oidc.Provider, string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.provider != nil {
		return in.provider, in.endpoint, nil
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, in.client), in.cfg.Issuer)
	if err != nil {
		return nil, "", fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		IntrospectionEndpoint string `json:"introspection_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, "", fmt.Errorf("discovery metadata: %w", err)
	}
	if meta.IntrospectionEndpoint == "" {
		return nil, "", errors.New("discovery: the issuer has no introspection_endpoint")
	}
	in.provider, in.endpoint = provider, meta.IntrospectionEndpoint
	return in.provider, in.endpoint, nil
}

// introspectionResponse holds the RFC 7662 §2.2 members the API uses.
type introspectionResponse struct {
	Active    bool   `json:"active"`
	Subject   string `json:"sub"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	Issuer    string `json:"iss"`
	TokenType string `json:"token_type"`
	Exp       int64  `json:"exp"`
	Cnf       struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

func (in *introspector) introspect(ctx context.Context, endpoint, token string) (tokenInfo, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenInfo{}, fmt.Errorf("introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client_secret_basic form-encodes id and secret first.
	req.SetBasicAuth(url.QueryEscape(in.cfg.ClientID), url.QueryEscape(in.cfg.ClientSecret))

	resp, err := in.client.Do(req)
	if err != nil {
		return tokenInfo{}, fmt.Errorf("introspection: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tokenInfo{}, fmt.Errorf("introspection: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return tokenInfo{}, fmt.Errorf("introspection: status %d", resp.StatusCode)
	}
	var ir introspectionResponse
	if err := json.Unmarshal(body, &ir); err != nil {
		return tokenInfo{}, fmt.Errorf("introspection: decode: %w", err)
	}
	return in.check(ir)
}

// check turns an introspection response into tokenInfo: active, a Bearer
// access token (not a refresh token presented as one), from our issuer,
// unexpired.
func (in *introspector) check(ir introspectionResponse) (tokenInfo, error) {
	if !ir.Active || (ir.Subject == "" && ir.ClientID == "") {
		return tokenInfo{}, errInactive
	}
	if ir.Subject == "" {
		// A client's own token (client_credentials, such as the gateway's
		// for token = "client"): its subject is the client, as RFC 9068
		// §2.2 says of JWT access tokens.
		ir.Subject = ir.ClientID
	}
	// oidc-provider sets token_type only for access tokens: "Bearer",
	// or "DPoP" for one bound to a key (cnf.jkt), whose proof
	// requireToken checks.
	switch {
	case strings.EqualFold(ir.TokenType, "Bearer"):
	case strings.EqualFold(ir.TokenType, "DPoP") && ir.Cnf.JKT != "":
	default:
		return tokenInfo{}, errInactive
	}
	if ir.Issuer != "" && strings.TrimSuffix(ir.Issuer, "/") != strings.TrimSuffix(in.cfg.Issuer, "/") {
		return tokenInfo{}, errInactive
	}
	info := tokenInfo{Subject: ir.Subject, ClientID: ir.ClientID, Scope: ir.Scope, JKT: ir.Cnf.JKT}
	if ir.Exp != 0 {
		info.Expiry = time.Unix(ir.Exp, 0)
		if time.Now().After(info.Expiry) {
			return tokenInfo{}, errInactive
		}
	}
	return info, nil
}

// userName asks the userinfo endpoint for the display name; it returns "" if
// that fails (the token was already found active).
func (in *introspector) userName(ctx context.Context, provider *oidc.Provider, token string) string {
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: "Bearer"})
	ui, err := provider.UserInfo(oidc.ClientContext(ctx, in.client), ts)
	if err != nil {
		return ""
	}
	var claims struct {
		Name              string `json:"name"`
		PreferredUsername string `json:"preferred_username"`
	}
	if err := ui.Claims(&claims); err != nil {
		return ""
	}
	if claims.Name != "" {
		return claims.Name
	}
	return claims.PreferredUsername
}
