package bff

import (
	"cmp"
	"crypto"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// AppConfig is one [[apps]] entry: an SPA with its own OIDC client.
type AppConfig struct {
	Name string `toml:"name"`
	// PathPrefix is where the app lives; its /bff/* endpoints are under it.
	// Must start and end with "/". Default "/".
	PathPrefix string `toml:"path_prefix"`
	// Hosts optionally restricts the app to these Host header values.
	Hosts []string `toml:"hosts"`

	Issuer       string   `toml:"issuer"`
	ClientID     string   `toml:"client_id"`
	ClientSecret string   `toml:"client_secret"`
	Scopes       []string `toml:"scopes"` // default ["openid", "profile", "offline_access"]
	// ClientAuthConfig's keys sit directly in the [[apps]] table.
	ClientAuthConfig
	// Profile "fapi2" turns on and enforces the FAPI 2.0 Security
	// Profile for the app (fapi2.go): PAR required, DPoP, private_key_jwt,
	// the authorization response's iss, PS256/ES256 ID tokens, the
	// profile's clock skew and short access tokens. Default "" (none).
	Profile string `toml:"profile"`
	// PAR is "auto" (pushed authorization requests, RFC 9126, when the
	// IdP has the endpoint), "required" or "off". Default "auto".
	PAR string `toml:"par"`
	// DPoP gives each session its own key pair (ES256) and sends DPoP
	// proofs (RFC 9449) with the code exchange and every refresh, so that
	// the IdP binds the tokens to the key; the APIs then get
	// "Authorization: DPoP" and a fresh proof per call. Default false.
	DPoP bool `toml:"dpop"`
	// IDTokenSigningAlgs are the algorithms accepted for ID tokens and
	// logout tokens. Default ["RS256"]. HS256/384/512 use the client secret.
	IDTokenSigningAlgs []string `toml:"id_token_signing_algs"`

	// Frontend is the upstream serving the SPA's static assets.
	Frontend string `toml:"frontend"`
	// UserInfo calls the IdP's userinfo endpoint after login and merges its
	// claims into what /bff/user shows (the ID token's iss, sub, aud and
	// the like win). Its sub must be the ID token's; a signed (JWT)
	// answer is verified like an ID token.
	UserInfo bool `toml:"userinfo"`
	// UserInfoOnRefresh calls userinfo again after each token refresh and
	// replaces the session's claims with the merged ones; a userinfo sub
	// other than the session's ends the session. Needs UserInfo.
	UserInfoOnRefresh bool `toml:"userinfo_on_refresh"`
	// RefreshMargin: an access token (a session's, or an API's client
	// token) is renewed this long before it expires, or a quarter of its
	// lifetime before if that is shorter.
	// Default 30s.
	RefreshMargin time.Duration `toml:"refresh_margin"`
	// PostLogoutRedirect is the local path the browser lands on after
	// logout. Default: the path prefix.
	PostLogoutRedirect string `toml:"post_logout_redirect"`

	APIs []APIConfig `toml:"apis"`

	// Downstream apps told whenever a session of this app ends.
	Downstream []DownstreamConfig `toml:"downstream"`
	// LogoutTokenTyp is the typ header of the logout tokens the gateway
	// sends downstream. Default "logout+jwt".
	LogoutTokenTyp string `toml:"logout_token_typ"`

	// LogoutConfig's keys sit directly in the [[apps]] table.
	LogoutConfig
}

// LogoutConfig tunes how the app's logout notifications are validated.
// Its keys are part of the [[apps]] table.
type LogoutConfig struct {
	// ClockSkew allowed on iat and exp. Default 60s.
	ClockSkew time.Duration `toml:"clock_skew"`
	// MaxTokenAge is the oldest iat accepted. Default 10m.
	MaxTokenAge time.Duration `toml:"max_token_age"`
	// AllowMissingExp accepts logout tokens without exp (pre-errata IdPs).
	AllowMissingExp bool `toml:"allow_missing_exp"`
	// RequireTyp requires the typ header logout+jwt.
	RequireTyp bool `toml:"require_logout_typ"`
	// ExpectedTyp, when set, is the only typ header value accepted.
	ExpectedTyp string `toml:"logout_typ"`
	// TrustedAudiences are audiences besides client_id that may appear.
	TrustedAudiences []string `toml:"trusted_audiences"`
	// JWKSRefetchInterval is the least time between two fetches of the
	// IdP's JWKS (on a token no cached key verifies). Default 5s.
	JWKSRefetchInterval time.Duration `toml:"jwks_refetch_interval"`
	// JWKSRefetchWait is how long such a token (logout or ID token) waits
	// for the next allowed fetch to start before it is refused. Default 5s.
	JWKSRefetchWait time.Duration `toml:"jwks_refetch_wait"`
	// JWKSMaxWaiters bounds the tokens waiting at once; beyond it a token
	// is refused at once. Default 64.
	JWKSMaxWaiters int `toml:"jwks_max_waiters"`
	// FrontchannelSessionRequired makes /bff/frontchannel-logout require
	// iss and sid.
	FrontchannelSessionRequired bool `toml:"frontchannel_logout_session_required"`
	// FrontchannelSIDOnly accepts a front-channel request with sid and no
	// iss, taking issuer as iss (Microsoft Entra ID sends only sid).
	FrontchannelSIDOnly bool `toml:"frontchannel_sid_only"`
	// DecryptionKeyFile is a PEM private key; when set, logout tokens must
	// be encrypted to it. The caller loads it into DecryptionKey.
	DecryptionKeyFile string `toml:"id_token_decryption_key_file"`
	// DecryptionKey is the key read from DecryptionKeyFile (an RSA or EC
	// private key); New refuses a DecryptionKeyFile without it.
	DecryptionKey crypto.Signer `toml:"-"`
}

// APIConfig is one [[apps.apis]] route.
type APIConfig struct {
	// Path is the full request path prefix, inside the app's path prefix.
	Path     string `toml:"path"`
	Upstream string `toml:"upstream"`
	// Token is which access token the API gets (Duende BFF's token
	// types): "user" (the session's; a session is required; default),
	// "client" (the gateway's own, from the client-credentials grant),
	// "user_or_client", "user_or_none", "none" (no token, a session is
	// required) or "anonymous" (no token, no session needed).
	Token string `toml:"token"`
	// DPoP, when false, sends this API the session's token as a bearer
	// token in an app with dpop = true: for an API that cannot take DPoP.
	// It works only while the IdP issues unbound tokens: a request with
	// a DPoP-bound token is refused (502). Default: the app's dpop.
	DPoP *bool `toml:"dpop"`
	// ClientScopes, ClientAudience and ClientResource are the scope, the
	// audience parameter and the RFC 8707 resource of the
	// client-credentials grant of token "client" and "user_or_client".
	ClientScopes   []string `toml:"client_scopes"`
	ClientAudience string   `toml:"client_audience"`
	ClientResource string   `toml:"client_resource"`
	// StripPrefix removes Path before forwarding. Default false.
	StripPrefix bool `toml:"strip_prefix"`
	// Cookies are the names of the browser's cookies the API gets. Default
	// none: an API authenticates with the bearer, and other cookies of the
	// host (the IdP's, say) are not its business. The gateway's own
	// cookies never pass.
	Cookies []string `toml:"cookies"`
}

// DownstreamConfig is one [[apps.downstream]] entry: an app behind the
// gateway that is told when a session ends.
type DownstreamConfig struct {
	BackchannelLogoutURI  string `toml:"backchannel_logout_uri"`
	FrontchannelLogoutURI string `toml:"frontchannel_logout_uri"`
	// Audience is the aud of its logout tokens. Default: the app's name.
	Audience string `toml:"audience"`
	// SessionRequired adds iss and sid to the front-channel URI.
	SessionRequired bool `toml:"session_required"`
	// Notify is "if_used" (default: only sessions that called its API) or
	// "always".
	Notify string `toml:"notify"`
	// API is the [[apps.apis]] path whose use counts for "if_used".
	// Default: the API whose upstream has the logout URI's origin.
	API string `toml:"api"`
	// SID is "idp" (default: the IdP's sid) or "gateway" (the gateway's
	// opaque session handle).
	SID string `toml:"sid"`
}

// UpstreamName names the upstream of an API route in session usage
// tracking and metrics.
func UpstreamName(app, apiPath string) string { return app + ":" + apiPath }

// DownstreamUpstream returns the name of the upstream whose use by a
// session makes downstream d "used" (for notify = "if_used"), or "".
func (c *AppConfig) DownstreamUpstream(d DownstreamConfig) string {
	if d.API != "" {
		return UpstreamName(c.Name, d.API)
	}
	uri := d.BackchannelLogoutURI
	if uri == "" {
		uri = d.FrontchannelLogoutURI
	}
	for _, api := range c.APIs {
		if origin(api.Upstream) == origin(uri) {
			return UpstreamName(c.Name, api.Path)
		}
	}
	return ""
}

// cookieNameRE is RFC 6265's cookie-name (an RFC 9110 token).
var cookieNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

var appNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Defaults fills in the zero values of c.
func (c *AppConfig) Defaults() {
	if c.PathPrefix == "" {
		c.PathPrefix = "/"
	}
	c.fapi2Defaults()
	if c.PAR == "" {
		c.PAR = parAuto
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "profile", "offline_access"}
	}
	if len(c.IDTokenSigningAlgs) == 0 {
		c.IDTokenSigningAlgs = []string{"RS256"}
	}
	if c.PostLogoutRedirect == "" {
		c.PostLogoutRedirect = c.PathPrefix
	}
	c.RefreshMargin = cmp.Or(c.RefreshMargin, 30*time.Second)
	if c.LogoutConfig.ClockSkew == 0 {
		c.LogoutConfig.ClockSkew = 60 * time.Second
	}
	if c.LogoutConfig.MaxTokenAge == 0 {
		c.LogoutConfig.MaxTokenAge = 10 * time.Minute
	}
	c.JWKSRefetchInterval = cmp.Or(c.JWKSRefetchInterval, logout.DefaultRefetchInterval)
	c.JWKSRefetchWait = cmp.Or(c.JWKSRefetchWait, logout.DefaultRefetchWait)
	c.JWKSMaxWaiters = cmp.Or(c.JWKSMaxWaiters, logout.DefaultMaxWaiters)
	for i := range c.APIs {
		if c.APIs[i].Token == "" {
			c.APIs[i].Token = "user"
		}
	}
	if c.LogoutTokenTyp == "" {
		c.LogoutTokenTyp = "logout+jwt"
	}
	for i := range c.Downstream {
		d := &c.Downstream[i]
		if d.Audience == "" {
			d.Audience = c.Name
		}
		if d.Notify == "" {
			d.Notify = "if_used"
		}
		if d.SID == "" {
			d.SID = "idp"
		}
	}
}

var supportedAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true, "HS256": true, "HS384": true, "HS512": true,
}

// Validate reports every problem, each prefixed with its key.
func (c *AppConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !appNameRE.MatchString(c.Name) {
		add("name: must be 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit")
	} else if strings.HasPrefix(c.Name, "login-") || strings.HasPrefix(c.Name, "logout-") {
		add("name: must not start with \"login-\" or \"logout-\" (the gateway's own cookies use those names)")
	}
	if !strings.HasPrefix(c.PathPrefix, "/") || !strings.HasSuffix(c.PathPrefix, "/") || strings.Contains(c.PathPrefix, "//") {
		add("path_prefix: must start and end with \"/\", e.g. \"/\" or \"/app/\"")
	}
	for i, h := range c.Hosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			add("hosts[%d]: must be a host name, optionally with a port", i)
		}
	}
	if err := checkURL(c.Issuer); err != nil {
		add("issuer: %v", err)
	}
	if c.ClientID == "" {
		add("client_id: is required")
	}
	errs = append(errs, c.ClientAuthConfig.validate(c.ClientSecret)...)
	errs = append(errs, c.parErrors()...)
	errs = append(errs, c.profileErrors()...)
	if !slices.Contains(c.Scopes, "openid") {
		add("scopes: must include \"openid\"")
	}
	for i, a := range c.IDTokenSigningAlgs {
		if !supportedAlgs[a] {
			add("id_token_signing_algs[%d]: unsupported algorithm %q (none is never allowed)", i, a)
		}
		if strings.HasPrefix(a, "HS") && c.ClientSecret == "" {
			add("id_token_signing_algs[%d]: %s needs client_secret", i, a)
		}
	}
	if err := checkURL(c.Frontend); err != nil {
		add("frontend: %v", err)
	}
	if c.UserInfoOnRefresh && !c.UserInfo {
		add("userinfo_on_refresh: needs userinfo = true")
	}
	if c.RefreshMargin < time.Second || c.RefreshMargin > time.Hour {
		add("refresh_margin: must be between 1s and 1h")
	}
	if !isLocalPath(c.PostLogoutRedirect) {
		add("post_logout_redirect: must be a local path starting with \"/\"")
	}
	for i, api := range c.APIs {
		if !strings.HasPrefix(api.Path, c.PathPrefix) || !strings.HasSuffix(api.Path, "/") {
			add("apis[%d].path: must start with the app's path_prefix %q and end with \"/\"", i, c.PathPrefix)
		}
		if strings.HasPrefix(api.Path, c.PathPrefix+"bff/") {
			add("apis[%d].path: must not be under %sbff/", i, c.PathPrefix)
		}
		for j := range i {
			if c.APIs[j].Path == api.Path {
				add("apis[%d].path: duplicates apis[%d].path", i, j)
			}
		}
		if err := checkURL(api.Upstream); err != nil {
			add("apis[%d].upstream: %v", i, err)
		}
		errs = append(errs, c.apiTokenErrors(i, api)...)
		for j, name := range api.Cookies {
			switch {
			case !cookieNameRE.MatchString(name):
				add("apis[%d].cookies[%d]: %q is not a cookie name", i, j, name)
			case session.IsGatewayCookie(name):
				add("apis[%d].cookies[%d]: %q is the gateway's own cookie, which never reaches an upstream", i, j, name)
			}
		}
	}
	for i, d := range c.Downstream {
		if d.BackchannelLogoutURI == "" && d.FrontchannelLogoutURI == "" {
			add("downstream[%d]: needs backchannel_logout_uri or frontchannel_logout_uri", i)
		}
		for key, uri := range map[string]string{"backchannel_logout_uri": d.BackchannelLogoutURI, "frontchannel_logout_uri": d.FrontchannelLogoutURI} {
			if uri == "" {
				continue
			}
			if err := checkURL(uri); err != nil {
				add("downstream[%d].%s: %v", i, key, err)
			}
		}
		if d.Notify != "if_used" && d.Notify != "always" {
			add("downstream[%d].notify: must be \"if_used\" or \"always\", not %q", i, d.Notify)
		}
		if d.SID != "idp" && d.SID != "gateway" {
			add("downstream[%d].sid: must be \"idp\" or \"gateway\", not %q", i, d.SID)
		}
		if d.API != "" && !slices.ContainsFunc(c.APIs, func(a APIConfig) bool { return a.Path == d.API }) {
			add("downstream[%d].api: %q is not the path of an [[apps.apis]] entry", i, d.API)
		}
		if d.Notify == "if_used" && d.API == "" && c.DownstreamUpstream(d) == "" {
			add("downstream[%d]: notify = \"if_used\" needs api, or an [[apps.apis]] upstream with the logout URI's origin", i)
		}
	}
	if c.LogoutConfig.ClockSkew < 0 || c.LogoutConfig.ClockSkew > 10*time.Minute {
		add("clock_skew: must be between 0 and 10m")
	}
	if c.LogoutConfig.MaxTokenAge <= 0 {
		add("max_token_age: must be positive")
	}
	if c.JWKSRefetchInterval < time.Second || c.JWKSRefetchInterval > time.Hour {
		add("jwks_refetch_interval: must be between 1s and 1h")
	}
	if c.JWKSRefetchWait < 0 || c.JWKSRefetchWait > 10*time.Second {
		add("jwks_refetch_wait: must be between 0 and 10s (the IdP waits for the back-channel answer)")
	}
	if c.JWKSMaxWaiters < 1 || c.JWKSMaxWaiters > 10000 {
		add("jwks_max_waiters: must be between 1 and 10000")
	}
	errs = append(errs, c.typErrors()...)
	return errors.Join(errs...)
}

func checkURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.User != nil || u.Fragment != "" {
		return errors.New("must not have user info or a fragment")
	}
	return nil
}
