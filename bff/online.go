package bff

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// onlineMeta is the part of a discovery document CheckOnline reads.
type onlineMeta struct {
	providerMeta
	UserinfoEndpoint     string   `json:"userinfo_endpoint"`
	TokenAuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
}

// CheckOnline fetches the discovery document of cfg's IdP with client and
// checks cfg against it: the issuer the IdP reports, the endpoints and
// algorithms the app relies on, and the client authentication. Problems
// make the configuration unusable; warnings name what will not work as
// an operator may expect. Each starts with the key it concerns.
func CheckOnline(ctx context.Context, client *http.Client, cfg AppConfig) (problems, warnings []error) {
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return []error{fmt.Errorf("issuer: oidc discovery: %w", issuerMismatch(err))}, nil
	}
	var m onlineMeta
	if err := op.Claims(&m); err != nil {
		return []error{fmt.Errorf("issuer: decode the discovery document: %w", err)}, nil
	}
	problem := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Errorf(format, args...)) }
	ep := op.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" {
		problem("issuer: the IdP's discovery has no authorization_endpoint or token_endpoint")
	}
	if m.JWKSURI == "" {
		problem("issuer: the IdP's discovery has no jwks_uri (ID and logout tokens cannot be verified)")
	}
	if len(m.CodeChallengeMethods) > 0 && !slices.Contains(m.CodeChallengeMethods, "S256") {
		problem("issuer: the IdP does not list PKCE S256 in code_challenge_methods_supported (it has %s)", strings.Join(m.CodeChallengeMethods, ", "))
	}
	for i, alg := range cfg.IDTokenSigningAlgs {
		if len(m.IDTokenAlgs) > 0 && !slices.Contains(m.IDTokenAlgs, alg) {
			problem("id_token_signing_algs[%d]: the IdP does not sign with %s (id_token_signing_alg_values_supported: %s)", i, alg, strings.Join(m.IDTokenAlgs, ", "))
		}
	}
	problems = append(problems, clientAuthProblems(cfg, m)...)
	if m.EndSessionEndpoint == "" {
		warn("issuer: the IdP has no end_session_endpoint: sign-out ends only the gateway's session, not the IdP's (RP-initiated logout)")
	}
	if m.RevocationEndpoint == "" {
		warn("issuer: the IdP has no revocation_endpoint: refresh tokens are not revoked at sign-out")
	}
	if !m.BackchannelSupport && !m.FrontchannelSupport {
		warn("issuer: the IdP supports neither back-channel nor front-channel logout: sign-outs elsewhere do not reach the gateway")
	}
	return problems, warnings
}

// clientAuthProblems checks that the IdP accepts a way the gateway
// authenticates at its token endpoint. The gateway sends client_secret
// with HTTP Basic (or in the form, if Basic fails); a public client
// (no client_secret) sends none. A configured token_endpoint_auth_method
// is to be checked here against token_endpoint_auth_methods_supported.
func clientAuthProblems(cfg AppConfig, m onlineMeta) []error {
	supported := m.TokenAuthMethods
	if len(supported) == 0 {
		supported = []string{"client_secret_basic"} // the default (Discovery 1.0 §3)
	}
	want := []string{"client_secret_basic", "client_secret_post"}
	if cfg.ClientSecret == "" {
		want = []string{"none"}
	}
	if slices.ContainsFunc(want, func(w string) bool { return slices.Contains(supported, w) }) {
		return nil
	}
	return []error{errors.New("client_secret: the IdP accepts none of " + strings.Join(want, ", ") +
		" at its token endpoint (token_endpoint_auth_methods_supported: " + strings.Join(supported, ", ") + ")")}
}
