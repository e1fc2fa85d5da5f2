// Package testop is an in-process OpenID Provider for tests: discovery, JWKS,
// authorization code + PKCE, pushed authorization requests (RFC 9126),
// the authorization response's iss (RFC 9207), refresh, client credentials, userinfo, RFC 7009 revocation,
// client authentication (client_secret_basic, client_secret_post and
// private_key_jwt with its assertion checks) and
// RP-initiated logout, on an httptest.Server, plus helpers to mint (and
// mis-mint) ID tokens and logout tokens signed with the keys it publishes.
//
// It publishes two signing keys: RSA-2048 "rs1" (alg RS256) and P-256 "ec1"
// published without an "alg" member, like the OIDF conformance suite's OP in
// its wrong-alg test. Discovery advertises RS256 only.
package testop

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/bffgate/bffgate/internal/dpop"
)

// Config configures an OP. The zero value is usable: client "client" with
// secret "secret-secret-secret-secret-secret!" (32 bytes, long enough for
// HS256) and no redirect URL yet.
type Config struct {
	ClientID     string // default "client"
	ClientSecret string // default a 35-byte secret
	// RedirectURL is the client's registered redirect_uri; it may be set
	// later with SetRedirectURL (often the RP's httptest URL is not known yet).
	RedirectURL string
	// PostLogoutRedirectURLs, when not empty, are the only values of
	// post_logout_redirect_uri that /end_session redirects to (exact match);
	// when empty any value is followed.
	PostLogoutRedirectURLs []string
	AccessTokenTTL         time.Duration // default 1h
	// IDTokenAlg signs the ID tokens of the token endpoint (default RS256).
	IDTokenAlg string
	// ClientTokenTTL is the lifetime of client_credentials tokens
	// (default AccessTokenTTL); SetClientTokenTTL changes it later.
	ClientTokenTTL time.Duration
	NoEndSession   bool // no end_session_endpoint
	NoRevocation   bool // no revocation_endpoint
	// OmitSID leaves sid out of ID tokens. By default every authorization
	// starts an OP session with a fresh random sid, carried by the ID tokens
	// of that login and of its refreshes.
	OmitSID bool
	// TokenAuthMethods and RevocationAuthMethods are what discovery lists
	// as token_endpoint_auth_methods_supported (default client_secret_basic,
	// client_secret_post) and revocation_endpoint_auth_methods_supported
	// (default: absent).
	TokenAuthMethods      []string
	RevocationAuthMethods []string
	// GrantTypes is what discovery lists as grant_types_supported
	// (default authorization_code, refresh_token, client_credentials).
	GrantTypes []string
	// PAR publishes a pushed authorization request endpoint (RFC 9126);
	// RequirePAR also sets require_pushed_authorization_requests and
	// makes /authorize refuse requests without request_uri.
	PAR, RequirePAR bool
	// AuthorizationResponseISS advertises
	// authorization_response_iss_parameter_supported (RFC 9207) and sends
	// iss in authorization responses (see SetISS).
	AuthorizationResponseISS bool
	// DPoP (RFC 9449) advertises dpop_signing_alg_values_supported,
	// verifies DPoP proofs at /token and /userinfo, binds the tokens of
	// a code exchange or refresh that carries a proof (token_type DPoP,
	// AccessTokenJKT), and requires a proof of the same key to refresh a
	// bound refresh token or use a bound access token. SetDPoPNonce makes
	// it demand a nonce.
	DPoP bool
	// Wrap, when not nil, wraps the OP's handler (the load harness times
	// the IdP's share of a login with it).
	Wrap func(http.Handler) http.Handler
}

// OP is a running test OpenID Provider.
type OP struct {
	URL string // the issuer and base URL, no trailing slash

	t                         testing.TB
	srv                       *httptest.Server
	cfg                       Config
	rsa                       *rsa.PrivateKey
	ec                        *ecdsa.PrivateKey
	jwksFetches, refreshCount atomic.Int64
	tokenCalls, parCalls      atomic.Int64
	rejectedRefreshes         atomic.Int64

	mu                     sync.Mutex // guards the fields below
	clients                map[string]*client
	sub                    string
	extra                  map[string]any
	failAuthorize, lastSID string
	failRefresh            bool
	codes, access, refresh map[string]*grant
	revoked                []string
	endSessions            []url.Values
	authFailures           []string
	authMethods            []string
	assertionJTIs          map[string]bool
	ui                     UserinfoOpts
	cc                     clientCredentials
	pushed                 map[string]*pushed
	authorizes             []url.Values
	issMode                ISSMode
	parFail                parFailure
	dpopNonce              string
	dpopProofs             []DPoPProof
	dpopChallenges         int
	dpopVerifier           dpop.Verifier
}

type client struct {
	secret    string
	redirects []string
	method    string           // "" accepts client_secret_basic and _post
	key       crypto.PublicKey // private_key_jwt
}

// grant is what a code, access token or refresh token stands for.
type grant struct {
	clientID, redirectURI, challenge, nonce string
	sub, sid                                string
	claims                                  map[string]any
	expires                                 time.Time
	jkt                                     string // DPoP: the key the tokens are bound to
}

// New starts an OP; it is closed by t.Cleanup.
func New(t testing.TB, cfg Config) *OP {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID = "client"
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = "secret-secret-secret-secret-secret!"
	}
	if cfg.TokenAuthMethods == nil {
		cfg.TokenAuthMethods = []string{SecretBasic, SecretPost}
	}
	if cfg.AccessTokenTTL == 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.GrantTypes == nil {
		cfg.GrantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}
	}
	if cfg.ClientTokenTTL == 0 {
		cfg.ClientTokenTTL = cfg.AccessTokenTTL
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("testop: rsa key: %v", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testop: ec key: %v", err)
	}
	op := &OP{
		t: t, cfg: cfg, rsa: rk, ec: ek, sub: "alice",
		clients: map[string]*client{}, codes: map[string]*grant{},
		access: map[string]*grant{}, refresh: map[string]*grant{},
		assertionJTIs: map[string]bool{}, pushed: map[string]*pushed{},
		cc: clientCredentials{ttl: cfg.ClientTokenTTL, tokens: map[string]ClientToken{}},
	}
	op.dpopVerifier.Nonce = func() string { return op.dpopNonceNow() }
	op.AddClient(cfg.ClientID, cfg.ClientSecret, cfg.RedirectURL)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /jwks", op.jwks)
	mux.HandleFunc("GET /authorize", op.authorize)
	mux.HandleFunc("POST /token", op.token)
	if cfg.PAR || cfg.RequirePAR {
		mux.HandleFunc("POST /par", op.par)
	}
	mux.HandleFunc("/userinfo", op.userinfo)
	if !cfg.NoRevocation {
		mux.HandleFunc("POST /revoke", op.revoke)
	}
	if !cfg.NoEndSession {
		mux.HandleFunc("/end_session", op.endSession)
	}
	var h http.Handler = mux
	if cfg.Wrap != nil {
		h = cfg.Wrap(mux)
	}
	op.srv = httptest.NewServer(h)
	op.URL = op.srv.URL
	t.Cleanup(op.srv.Close)
	return op
}

// AddClient registers another client with its redirect URLs.
func (op *OP) AddClient(id, secret string, redirectURLs ...string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	redirects := slices.DeleteFunc(slices.Clone(redirectURLs), func(u string) bool { return u == "" })
	op.clients[id] = &client{secret: secret, redirects: redirects}
}

// SetRedirectURL sets the redirect_uri of the Config's client.
func (op *OP) SetRedirectURL(u string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.clients[op.cfg.ClientID].redirects = []string{u}
}

// SetUser sets the user the next authorizations approve, and extra ID token
// and userinfo claims (default: sub "alice", no extras).
func (op *OP) SetUser(sub string, extraClaims map[string]any) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.sub, op.extra = sub, extraClaims
}

// FailNextAuthorize makes the next /authorize redirect back with this error
// code (for example "access_denied").
func (op *OP) FailNextAuthorize(code string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.failAuthorize = code
}

// FailRefresh makes refresh_token grants answer 400 invalid_grant while on.
func (op *OP) FailRefresh(fail bool) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.failRefresh = fail
}

// ClientID returns the Config's client id.
func (op *OP) ClientID() string { return op.cfg.ClientID }

// ClientSecret returns the Config's client secret.
func (op *OP) ClientSecret() string { return op.cfg.ClientSecret }

// AccessTokenTTL returns the lifetime of the access tokens it issues.
func (op *OP) AccessTokenTTL() time.Duration {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.cfg.AccessTokenTTL
}

// SetAccessTokenTTL sets the lifetime of the access tokens issued next
// (the code exchange's and the refresh grant's).
func (op *OP) SetAccessTokenTTL(d time.Duration) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.cfg.AccessTokenTTL = d
}

// JWKSURL returns the jwks_uri.
func (op *OP) JWKSURL() string { return op.URL + "/jwks" }

// JWKSFetches counts GET /jwks requests.
func (op *OP) JWKSFetches() int { return int(op.jwksFetches.Load()) }

// RefreshCount counts successful refresh_token grants.
func (op *OP) RefreshCount() int { return int(op.refreshCount.Load()) }

// RejectedRefreshCount counts refresh_token grants answered with
// invalid_grant: an unknown, already rotated (refresh tokens are single
// use) or, with FailRefresh, any refresh token.
func (op *OP) RejectedRefreshCount() int { return int(op.rejectedRefreshes.Load()) }

// LastSID returns the sid of the latest successful authorization.
func (op *OP) LastSID() string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.lastSID
}

// Revoked returns the tokens received at /revoke, in order.
func (op *OP) Revoked() []string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return slices.Clone(op.revoked)
}

// EndSessionRequests returns the parameters of every /end_session request.
func (op *OP) EndSessionRequests() []url.Values {
	op.mu.Lock()
	defer op.mu.Unlock()
	return slices.Clone(op.endSessions)
}

func (op *OP) discovery(w http.ResponseWriter, _ *http.Request) {
	md := map[string]any{
		"issuer":                                op.URL,
		"authorization_endpoint":                op.URL + "/authorize",
		"token_endpoint":                        op.URL + "/token",
		"jwks_uri":                              op.JWKSURL(),
		"userinfo_endpoint":                     op.URL + "/userinfo",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"grant_types_supported":                 op.cfg.GrantTypes,
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": op.cfg.TokenAuthMethods,
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"id_token_signing_alg_values_supported": []string{cmp.Or(op.cfg.IDTokenAlg, "RS256")},
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"frontchannel_logout_supported":         true,
		"frontchannel_logout_session_supported": true,
	}
	if !op.cfg.NoRevocation {
		md["revocation_endpoint"] = op.URL + "/revoke"
		if len(op.cfg.RevocationAuthMethods) > 0 {
			md["revocation_endpoint_auth_methods_supported"] = op.cfg.RevocationAuthMethods
		}
	}
	if op.cfg.PAR || op.cfg.RequirePAR {
		md["pushed_authorization_request_endpoint"] = op.URL + "/par"
	}
	if op.cfg.RequirePAR {
		md["require_pushed_authorization_requests"] = true
	}
	if op.cfg.AuthorizationResponseISS {
		md["authorization_response_iss_parameter_supported"] = true
	}
	if op.cfg.DPoP {
		md["dpop_signing_alg_values_supported"] = []string{"ES256"}
	}
	if !op.cfg.NoEndSession {
		md["end_session_endpoint"] = op.URL + "/end_session"
	}
	writeJSON(w, http.StatusOK, md)
}

func (op *OP) jwks(w http.ResponseWriter, _ *http.Request) {
	op.jwksFetches.Add(1)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: op.rsa.Public(), KeyID: "rs1", Algorithm: "RS256", Use: "sig"},
		{Key: op.ec.Public(), KeyID: "ec1", Use: "sig"}, // no alg, on purpose
	}}
	writeJSON(w, http.StatusOK, set)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// random returns n random bytes, base64url-encoded.
func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
