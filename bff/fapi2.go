package bff

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The FAPI 2.0 Security Profile (OpenID FAPI 2.0 Security Profile, final)
// on the client side, as one switch: profile = "fapi2". It turns on and
// enforces pushed authorization requests (par = "required"), PKCE S256
// (always used), DPoP-bound tokens (dpop = true, and a login whose token
// response is not DPoP-bound is refused), private_key_jwt client
// authentication, the authorization response's iss (required whatever
// the IdP advertises), PS256 or ES256 for ID tokens, and the limits
// below. A configuration that contradicts the profile is an error.

// profileFAPI2 is the value of the profile key that turns the profile on.
const profileFAPI2 = "fapi2"

// fapi2Algs are the only JWS algorithms the profile allows (§5.4.1).
var fapi2Algs = []string{"PS256", "ES256"}

// fapi2FutureSkew is the profile's clock skew tolerance (§5.3.1): a JWT
// (here the ID token) whose iat or nbf lies more than this in the future
// is refused. The profile asks servers to accept 0 to 10 s in the future;
// the gateway holds the IdP to the same bound.
const fapi2FutureSkew = 10 * time.Second

// fapi2MaxAccessTokenLifetime bounds what the IdP may say an access
// token lives (expires_in). The profile recommends short-lived access
// tokens; ten minutes keeps a stolen token's window short even where an
// API does not check the DPoP binding, and refreshes are cheap for the
// gateway. A token response without expires_in is refused too: its
// lifetime would be unknown.
const fapi2MaxAccessTokenLifetime = 10 * time.Minute

// isFAPI2 reports whether the app runs the FAPI 2.0 profile.
func (c *AppConfig) isFAPI2() bool { return c.Profile == profileFAPI2 }

// fapi2Defaults applies the profile before the other defaults: PAR is
// required, DPoP on, private_key_jwt the client authentication and
// PS256/ES256 the ID token algorithms, unless configured otherwise
// (which Validate then refuses where it contradicts the profile).
func (c *AppConfig) fapi2Defaults() {
	if !c.isFAPI2() {
		return
	}
	if c.PAR == "" || c.PAR == parAuto {
		c.PAR = parRequired
	}
	c.DPoP = true
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = "private_key_jwt"
	}
	if len(c.IDTokenSigningAlgs) == 0 {
		c.IDTokenSigningAlgs = slices.Clone(fapi2Algs)
	}
}

// profileErrors checks the profile key, and a FAPI 2.0 app's keys
// against the profile (after Defaults).
func (c *AppConfig) profileErrors() []error {
	switch c.Profile {
	case "":
		return nil
	case profileFAPI2:
	default:
		return []error{fmt.Errorf("profile: must be \"\" or %q, not %q", profileFAPI2, c.Profile)}
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.PAR != parRequired {
		add("par: is %q, but profile = \"fapi2\" requires pushed authorization requests (leave par unset or \"required\")", c.PAR)
	}
	if c.TokenEndpointAuthMethod != "private_key_jwt" {
		add("token_endpoint_auth_method: is %q, but profile = \"fapi2\" requires private_key_jwt", c.TokenEndpointAuthMethod)
	}
	if c.ClientAssertionKeyFile == "" {
		add("client_assertion_key_file: profile = \"fapi2\" requires private_key_jwt, which needs the client's signing key")
	}
	for i, a := range c.IDTokenSigningAlgs {
		if !slices.Contains(fapi2Algs, a) {
			add("id_token_signing_algs[%d]: %s is not allowed by profile = \"fapi2\" (only %s)", i, a, strings.Join(fapi2Algs, " or "))
		}
	}
	if c.ClientAssertionAlg != "" && !slices.Contains(fapi2Algs, c.ClientAssertionAlg) {
		add("client_assertion_alg: %s is not allowed by profile = \"fapi2\" (only %s)", c.ClientAssertionAlg, strings.Join(fapi2Algs, " or "))
	}
	for i, api := range c.APIs {
		if api.DPoP != nil && !*api.DPoP {
			add("apis[%d].dpop: profile = \"fapi2\" sends only DPoP-bound tokens; an API cannot take a bearer token", i)
		}
	}
	return errs
}

// fapi2AccessToken checks a token response's access token against the
// profile: DPoP-bound, with a known and short lifetime. The login and
// every refresh grant (proxy.RefresherConfig.Check) are held to it.
func fapi2AccessToken(tokenType string, issued, expiry time.Time) error {
	if !isDPoP(tokenType) {
		return errors.New("fapi2: the access token is not DPoP-bound (token_type " + truncate(tokenType, 32) + ")")
	}
	if expiry.IsZero() {
		return errors.New("fapi2: the token response has no expires_in")
	}
	if life := expiry.Sub(issued); life > fapi2MaxAccessTokenLifetime+time.Second {
		return fmt.Errorf("fapi2: the access token lives %s, more than %s", life.Round(time.Second), fapi2MaxAccessTokenLifetime)
	}
	return nil
}

// fapi2Token checks, for a FAPI 2.0 app, the token response of a login
// and its verified ID token against the profile: the access token is
// DPoP-bound, its lifetime is known and short, and the ID token was not
// issued in the future beyond the clock skew.
func fapi2Token(tok *oauth2.Token, issued time.Time, idt *oidc.IDToken, now time.Time) error {
	if err := fapi2AccessToken(tok.TokenType, issued, tok.Expiry); err != nil {
		return err
	}
	if idt.IssuedAt.After(now.Add(fapi2FutureSkew)) {
		return fmt.Errorf("fapi2: the ID token's iat is %s in the future (at most %s)", idt.IssuedAt.Sub(now).Round(time.Second), fapi2FutureSkew)
	}
	var c struct {
		NBF *float64 `json:"nbf"`
	}
	if err := idt.Claims(&c); err != nil {
		return fmt.Errorf("fapi2: id token claims: %w", err)
	}
	if c.NBF != nil && time.Unix(int64(*c.NBF), 0).After(now.Add(fapi2FutureSkew)) {
		return fmt.Errorf("fapi2: the ID token's nbf is more than %s in the future", fapi2FutureSkew)
	}
	return nil
}
