package bff

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bffgate/bffgate/internal/clientauth"
)

// onlineMeta is the part of a discovery document CheckOnline reads.
type onlineMeta struct {
	providerMeta
	UserinfoEndpoint     string   `json:"userinfo_endpoint"`
	CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
	GrantTypes           []string `json:"grant_types_supported"`
	DPoPAlgs             []string `json:"dpop_signing_alg_values_supported"`
}

// CheckOnline fetches the discovery document of cfg's IdP with client and
// checks cfg against it: the issuer the IdP reports, the endpoints and
// algorithms the app relies on, and the client authentication. Problems
// make the configuration unusable; warnings name what will not work as
// an operator may expect. Each starts with the key it concerns.
func CheckOnline(ctx context.Context, client *http.Client, cfg AppConfig) (problems, warnings []error) {
	problems, warnings, _ = CheckOnlineReport(ctx, client, cfg)
	return problems, warnings
}

// CheckOnlineReport is CheckOnline, and also returns notes: what the
// gateway will use of the IdP's optional features (pushed authorization
// requests, the authorization response's iss).
func CheckOnlineReport(ctx context.Context, client *http.Client, cfg AppConfig) (problems, warnings []error, notes []string) {
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return []error{fmt.Errorf("issuer: oidc discovery: %w", issuerMismatch(err))}, nil, nil
	}
	var m onlineMeta
	if err := op.Claims(&m); err != nil {
		return []error{fmt.Errorf("issuer: decode the discovery document: %w", err)}, nil, nil
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
		if cfg.Profile == profileFAPI2 {
			break // fapi2Problems: one of the profile's algorithms is enough
		}
		if len(m.IDTokenAlgs) > 0 && !slices.Contains(m.IDTokenAlgs, alg) {
			problem("id_token_signing_algs[%d]: the IdP does not sign with %s (id_token_signing_alg_values_supported: %s)", i, alg, strings.Join(m.IDTokenAlgs, ", "))
		}
	}
	if cfg.UserInfo && m.UserinfoEndpoint == "" {
		problem("userinfo: the IdP has no userinfo_endpoint")
	}
	problems = append(problems, clientAuthProblems(cfg, m)...)
	par, err := parEndpoint(cmp.Or(cfg.PAR, parAuto), m.providerMeta)
	switch {
	case err != nil:
		problems = append(problems, err)
	case par != "":
		notes = append(notes, "par: logins use pushed authorization requests (RFC 9126) at "+par)
	case m.PAREndpoint != "":
		notes = append(notes, "par: the IdP supports pushed authorization requests (RFC 9126), but par = \"off\"")
	default:
		notes = append(notes, "par: the IdP has no pushed_authorization_request_endpoint: the authorization request goes through the browser")
	}
	if cfg.Profile == profileFAPI2 {
		p, w := fapi2Problems(m)
		problems, warnings = append(problems, p...), append(warnings, w...)
	}
	if m.ISSParameter {
		notes = append(notes, "issuer: the IdP sends iss in authorization responses (RFC 9207): the callback requires it")
	} else {
		notes = append(notes, "issuer: the IdP does not advertise iss in authorization responses (RFC 9207): a present iss is still checked")
	}
	if m.EndSessionEndpoint == "" {
		warn("issuer: the IdP has no end_session_endpoint: sign-out ends only the gateway's session, not the IdP's (RP-initiated logout)")
	}
	if m.RevocationEndpoint == "" {
		warn("issuer: the IdP has no revocation_endpoint: refresh tokens are not revoked at sign-out")
	}
	for i, api := range cfg.APIs {
		if usesClientToken(api.Token) && len(m.GrantTypes) > 0 && !slices.Contains(m.GrantTypes, "client_credentials") {
			warn("apis[%d].token: the IdP does not list client_credentials in grant_types_supported: %q needs it", i, api.Token)
		}
	}
	if !m.BackchannelSupport && !m.FrontchannelSupport {
		warn("issuer: the IdP supports neither back-channel nor front-channel logout: sign-outs elsewhere do not reach the gateway")
	}
	return problems, warnings, notes
}

// clientAuthProblems checks that the IdP accepts the client
// authentication the gateway will use (clientauth.Choose, as at run
// time) at its token endpoint, and at its revocation endpoint when that
// lists its own methods.
func clientAuthProblems(cfg AppConfig, m onlineMeta) []error {
	configured := clientauth.Method(cfg.TokenEndpointAuthMethod)
	hasSecret, hasKey := cfg.ClientSecret != "", cfg.ClientAssertionKeyFile != ""
	var errs []error
	check := func(endpoint, member string, supported []string) {
		method := clientauth.Choose(configured, supported, hasSecret, hasKey)
		if clientauth.Supported(method, supported) {
			return
		}
		key, why := "token_endpoint_auth_method", "is set to "+string(method)
		if configured == "" {
			key, why = "client_secret", "can only use "+string(method)
			if hasKey {
				key = "client_assertion_key_file"
			}
		}
		listed := strings.Join(supported, ", ")
		if listed == "" {
			listed = "none listed: client_secret_basic"
		}
		errs = append(errs, fmt.Errorf("%s: the client %s, which the IdP does not accept at its %s endpoint (%s: %s)",
			key, why, endpoint, member, listed))
	}
	check("token", "token_endpoint_auth_methods_supported", m.TokenAuthMethods)
	if m.RevocationEndpoint != "" && len(m.RevocationAuthMethods) > 0 {
		check("revocation", "revocation_endpoint_auth_methods_supported", m.RevocationAuthMethods)
	}
	return errs
}

// fapi2Problems says what the IdP's discovery lacks for profile =
// "fapi2" (problems: logins would fail) and what it should do
// (warnings). PAR's endpoint is checked with par = "required".
func fapi2Problems(m onlineMeta) (problems, warnings []error) {
	problem := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if !m.ISSParameter {
		problem("profile: fapi2 requires iss in authorization responses (RFC 9207), but the IdP does not advertise authorization_response_iss_parameter_supported")
	}
	if !slices.Contains(m.DPoPAlgs, "ES256") {
		problem("profile: fapi2 binds tokens with DPoP ES256 keys, but the IdP's dpop_signing_alg_values_supported does not list ES256 (it has %s)", listed(m.DPoPAlgs))
	}
	if !slices.Contains(m.TokenAuthMethods, "private_key_jwt") {
		problem("profile: fapi2 requires private_key_jwt, but the IdP's token_endpoint_auth_methods_supported does not list it (it has %s)", listed(m.TokenAuthMethods))
	}
	if len(m.IDTokenAlgs) > 0 && !slices.ContainsFunc(fapi2Algs, func(a string) bool { return slices.Contains(m.IDTokenAlgs, a) }) {
		problem("profile: fapi2 requires PS256 or ES256 ID tokens, but the IdP's id_token_signing_alg_values_supported has %s", listed(m.IDTokenAlgs))
	}
	if !m.RequirePAR {
		warnings = append(warnings, errors.New("profile: the IdP does not advertise require_pushed_authorization_requests: the gateway always pushes, but register the client so that the IdP refuses authorization requests that were not pushed"))
	}
	return problems, warnings
}

func listed(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(v, ", ")
}
