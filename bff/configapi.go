package bff

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/proxy"
)

// tokenAnonymous is the token kind of an anonymous API: never a token,
// no session needed (Duende BFF's anonymous remote API). Token "none"
// attaches no token either but, as it always has, requires a session.
const tokenAnonymous = "anonymous"

// proxyToken is the proxy's token kind for an API's token.
func proxyToken(kind string) string {
	if kind == tokenAnonymous {
		return proxy.TokenNone
	}
	return kind
}

// usesClientToken reports whether an API's token kind needs the
// client-credentials grant.
func usesClientToken(kind string) bool {
	return kind == proxy.TokenClient || kind == proxy.TokenUserOrClient
}

// apiTokenErrors checks the token keys of apis[i].
func (c *AppConfig) apiTokenErrors(i int, api APIConfig) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("apis[%d].%s", i, fmt.Sprintf(format, args...)))
	}
	if !proxy.ValidToken(api.Token) && api.Token != tokenAnonymous {
		add("token: must be \"user\", \"client\", \"user_or_client\", \"user_or_none\", \"none\" or \"anonymous\", not %q", api.Token)
		return errs
	}
	if !usesClientToken(api.Token) {
		if len(api.ClientScopes) > 0 || api.ClientAudience != "" || api.ClientResource != "" {
			add("client_scopes, client_audience, client_resource: only with token = \"client\" or \"user_or_client\"")
		}
		return errs
	}
	// The client-credentials grant is for confidential clients.
	if c.ClientSecret == "" && c.ClientAssertionKeyFile == "" || c.TokenEndpointAuthMethod == string(clientauth.None) {
		add("token: %q needs a confidential client (client_secret or client_assertion_key_file): the client-credentials grant authenticates the client", api.Token)
	}
	for j, sc := range api.ClientScopes {
		if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
			add("client_scopes[%d]: %q is not a scope", j, sc)
		}
	}
	if strings.ContainsAny(api.ClientAudience, " \t") {
		add("client_audience: must not contain spaces")
	}
	if r := api.ClientResource; r != "" {
		// RFC 8707 §2: an absolute URI without a fragment.
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(r, "#") {
			add("client_resource: must be an absolute URI without a fragment (RFC 8707)")
		}
	}
	return errs
}

// clientGrant is the client-credentials grant of an API.
func (api APIConfig) clientGrant() proxy.ClientGrant {
	return proxy.ClientGrant{Scopes: api.ClientScopes, Audience: api.ClientAudience, Resource: api.ClientResource}
}
