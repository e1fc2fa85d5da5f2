// Package clientauth authenticates the gateway as an OAuth 2.0 client at
// the IdP's token and revocation endpoints: client_secret_basic and
// client_secret_post (RFC 6749 §2.3.1, OpenID Connect Core §9) or
// private_key_jwt (RFC 7523 §2.2 with a key from a file). It chooses the
// method from configuration or from the IdP's discovery document, and
// hands each call what it needs: an x/oauth2 auth style and form
// parameters for the code exchange, a refresh grant, and a ready request
// for revocation (RFC 7009). It imports no project package.
package clientauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Method is a token_endpoint_auth_method value (OpenID Connect
// Registration §2).
type Method string

// The methods the gateway speaks.
const (
	SecretBasic   Method = "client_secret_basic"
	SecretPost    Method = "client_secret_post"
	PrivateKeyJWT Method = "private_key_jwt"
	// None is a public client's: client_id alone, no proof.
	None Method = "none"
)

// Methods lists the methods of a confidential client, in the order of
// preference Choose uses when a key is configured.
var Methods = []Method{PrivateKeyJWT, SecretBasic, SecretPost}

// AssertionType is the client_assertion_type of private_key_jwt
// (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ParseMethod checks a configured method name; "" is valid and means
// "choose from discovery".
func ParseMethod(s string) (Method, error) {
	if s == "" || s == string(None) || slices.Contains(Methods, Method(s)) {
		return Method(s), nil
	}
	return "", fmt.Errorf("unknown method %q: use client_secret_basic, client_secret_post, private_key_jwt or none", s)
}

// Choose returns the method to use: configured if set, else the first of
// the methods the client can speak that the IdP lists in supported (its
// token_endpoint_auth_methods_supported or
// revocation_endpoint_auth_methods_supported). private_key_jwt comes
// first when the client has a key, then client_secret_basic and
// client_secret_post when it has a secret; a client with neither is a
// public client (none). An IdP that lists nothing
// supports client_secret_basic (OpenID Connect Discovery §3). When the
// IdP lists none of the client's methods, Choose returns the first of
// them anyway and the IdP's answer will say why.
func Choose(configured Method, supported []string, hasSecret, hasKey bool) Method {
	if configured != "" {
		return configured
	}
	var can []Method
	if hasKey {
		can = append(can, PrivateKeyJWT)
	}
	if hasSecret {
		can = append(can, SecretBasic, SecretPost)
	}
	if len(can) == 0 {
		return None
	}
	for _, m := range can {
		if Supported(m, supported) {
			return m
		}
	}
	return can[0]
}

// Supported reports whether an IdP that lists supported (an
// *_auth_methods_supported member) accepts m; an empty list means
// client_secret_basic alone (OpenID Connect Discovery §3).
func Supported(m Method, supported []string) bool {
	if len(supported) == 0 {
		return m == SecretBasic
	}
	return slices.Contains(supported, string(m))
}

// Client is an OAuth client's identity and how it proves it.
type Client struct {
	ID     string
	Secret string
	Method Method
	// Key signs the assertions of private_key_jwt.
	Key *Key
	// Audience is the aud of the assertions: the IdP's issuer identifier,
	// as OpenID Connect Core §9 (errata set 2) and RFC 7523bis require.
	Audience string
}

// AuthStyle is how x/oauth2 must send the client's credentials: never
// auto-detection, which costs a failed request before it learns.
func (c *Client) AuthStyle() oauth2.AuthStyle {
	if c.Method == SecretBasic {
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleInParams
}

// OAuth2Secret is the secret to give x/oauth2: none for private_key_jwt,
// so that only the assertion proves the client, and none for none.
func (c *Client) OAuth2Secret() string {
	if c.Method == PrivateKeyJWT || c.Method == None {
		return ""
	}
	return c.Secret
}

// Params returns the form parameters the method adds besides client_id
// and client_secret: a fresh assertion for private_key_jwt, else none.
func (c *Client) Params() (url.Values, error) {
	if c.Method != PrivateKeyJWT {
		return nil, nil
	}
	if c.Key == nil {
		return nil, fmt.Errorf("client %s: private_key_jwt without a key", c.ID)
	}
	a, err := c.Key.assertion(c.ID, c.Audience)
	if err != nil {
		return nil, err
	}
	return url.Values{"client_assertion_type": {AssertionType}, "client_assertion": {a}}, nil
}

// RefreshAssertion replaces form's client_assertion, if it has one, with
// a fresh one (a resent request must not reuse the single-use jti).
func (c *Client) RefreshAssertion(form url.Values) error {
	if form.Get("client_assertion") == "" {
		return nil
	}
	p, err := c.Params()
	if err != nil {
		return err
	}
	form.Set("client_assertion", p.Get("client_assertion"))
	return nil
}

// ExchangeOptions returns Params as options for oauth2.Config.Exchange.
func (c *Client) ExchangeOptions() ([]oauth2.AuthCodeOption, error) {
	p, err := c.Params()
	if err != nil {
		return nil, err
	}
	var opts []oauth2.AuthCodeOption
	for k, vs := range p {
		opts = append(opts, oauth2.SetAuthURLParam(k, vs[0]))
	}
	return opts, nil
}

// Refresh runs the refresh_token grant at tokenURL. x/oauth2's own
// refresh (Config.TokenSource) cannot carry extra parameters such as an
// assertion; its clientcredentials token request can, and explicitly
// lets grant_type be set, so the grant goes through it with the same
// response parsing and *oauth2.RetrieveError. The HTTP client is
// ctx's oauth2.HTTPClient, as everywhere in x/oauth2.
func (c *Client) Refresh(ctx context.Context, tokenURL, refreshToken string) (*oauth2.Token, error) {
	params, err := c.Params()
	if err != nil {
		return nil, err
	}
	if params == nil {
		params = url.Values{}
	}
	params.Set("grant_type", "refresh_token")
	params.Set("refresh_token", refreshToken)
	cc := clientcredentials.Config{
		ClientID: c.ID, ClientSecret: c.OAuth2Secret(), TokenURL: tokenURL,
		AuthStyle: c.AuthStyle(), EndpointParams: params,
	}
	return cc.Token(ctx)
}

// NewRequest returns a POST of form to endpoint, authenticated by the
// method (for endpoints x/oauth2 does not cover, such as revocation).
func (c *Client) NewRequest(ctx context.Context, endpoint string, form url.Values) (*http.Request, error) {
	form = cloneValues(form)
	extra, err := c.Params()
	if err != nil {
		return nil, err
	}
	for k, vs := range extra {
		form[k] = vs
	}
	if c.Method != SecretBasic {
		form.Set("client_id", c.ID)
	}
	if c.Method == SecretPost {
		form.Set("client_secret", c.Secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.Method == SecretBasic { // RFC 6749 §2.3.1: form-encoded, then Basic
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return req, nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// ClientCredentials runs the client_credentials grant (RFC 6749 §4.4) at
// tokenURL through x/oauth2's clientcredentials, authenticated by the
// method, with scopes and extra form parameters (such as RFC 8707's
// resource or an audience). The HTTP client is ctx's oauth2.HTTPClient.
func (c *Client) ClientCredentials(ctx context.Context, tokenURL string, scopes []string, extra url.Values) (*oauth2.Token, error) {
	params, err := c.Params()
	if err != nil {
		return nil, err
	}
	if params == nil {
		params = url.Values{}
	}
	for k, vs := range extra {
		params[k] = slices.Clone(vs)
	}
	cc := clientcredentials.Config{
		ClientID: c.ID, ClientSecret: c.OAuth2Secret(), TokenURL: tokenURL,
		Scopes: scopes, AuthStyle: c.AuthStyle(), EndpointParams: params,
	}
	return cc.Token(ctx)
}
