package bff

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/bffgate/bffgate/internal/clientauth"
)

// ClientAuthConfig says how the app's client authenticates at the IdP's
// token and revocation endpoints (code exchange, refresh, revocation).
// Its keys are part of the [[apps]] table.
type ClientAuthConfig struct {
	// TokenEndpointAuthMethod is client_secret_basic, client_secret_post,
	// private_key_jwt or none, for every call alike. Default: chosen from the
	// IdP's discovery (token_endpoint_auth_methods_supported, and
	// revocation_endpoint_auth_methods_supported for revocation):
	// private_key_jwt if a key is configured, else client_secret_basic,
	// else client_secret_post; none (a public client) without a secret
	// or key.
	TokenEndpointAuthMethod string `toml:"token_endpoint_auth_method"`
	// ClientAssertionKeyFile is the PEM private key (RSA, EC or Ed25519)
	// signing private_key_jwt assertions. The caller loads it into
	// ClientAssertionKey.
	ClientAssertionKeyFile string `toml:"client_assertion_key_file"`
	// ClientAssertionKeyID is the assertions' kid. Default: the key's JWK
	// thumbprint (RFC 7638).
	ClientAssertionKeyID string `toml:"client_assertion_kid"`
	// ClientAssertionAlg is the assertions' alg. Default by key type:
	// RS256, ES256/384/512, EdDSA; an RSA key may use PS256.
	ClientAssertionAlg string `toml:"client_assertion_alg"`
	// ClientAssertionKey is the key read from ClientAssertionKeyFile;
	// New refuses a ClientAssertionKeyFile without it.
	ClientAssertionKey crypto.Signer `toml:"-"`
}

// validate reports the problems of c; secret is the app's client_secret.
func (c *ClientAuthConfig) validate(secret string) []error {
	var errs []error
	m, err := clientauth.ParseMethod(c.TokenEndpointAuthMethod)
	if err != nil {
		errs = append(errs, fmt.Errorf("token_endpoint_auth_method: %w", err))
	}
	switch {
	case m == clientauth.PrivateKeyJWT && c.ClientAssertionKeyFile == "":
		errs = append(errs, errors.New("token_endpoint_auth_method: private_key_jwt needs client_assertion_key_file"))
	case (m == clientauth.SecretBasic || m == clientauth.SecretPost) && secret == "":
		errs = append(errs, fmt.Errorf("token_endpoint_auth_method: %s needs client_secret", m))
	}
	if c.ClientAssertionKeyFile == "" && (c.ClientAssertionKeyID != "" || c.ClientAssertionAlg != "") {
		errs = append(errs, errors.New("client_assertion_kid, client_assertion_alg: need client_assertion_key_file"))
	}
	return errs
}

// AssertionKey makes the private_key_jwt signing key of a loaded
// ClientAssertionKey (nil without one), checking that it fits the
// configured alg.
func (c *ClientAuthConfig) AssertionKey() (*clientauth.Key, error) {
	if c.ClientAssertionKey == nil {
		if c.ClientAssertionKeyFile != "" { // fail closed: the method needs it
			return nil, errors.New("client_assertion_key_file: the key was not loaded")
		}
		return nil, nil
	}
	k, err := clientauth.NewKey(c.ClientAssertionKey, c.ClientAssertionKeyID, c.ClientAssertionAlg)
	if err != nil {
		return nil, fmt.Errorf("client_assertion_key_file: %w", err)
	}
	return k, nil
}

// logAssertionKey logs the public JWK of an app's private_key_jwt key
// (nil: none), for registering it at the IdP with the same kid.
func logAssertionKey(logger *slog.Logger, app string, key *clientauth.Key) {
	if key == nil || logger == nil {
		return
	}
	jwk, err := json.Marshal(key.Public)
	if err != nil {
		return
	}
	logger.Info("private_key_jwt: register this public key at the IdP", "app", app, "kid", key.KeyID, "alg", string(key.Alg), "jwk", string(jwk))
}

// clientAuth returns how the app authenticates at the token endpoint and
// at the revocation endpoint, by configuration or by what the IdP lists.
func (a *app) clientAuth(meta providerMeta) (token, revocation *clientauth.Client) {
	c := a.cfg
	configured := clientauth.Method(c.TokenEndpointAuthMethod)
	hasSecret, hasKey := c.ClientSecret != "", a.assertionKey != nil
	token = &clientauth.Client{
		ID: c.ClientID, Secret: c.ClientSecret, Key: a.assertionKey, Audience: c.Issuer,
		Method: clientauth.Choose(configured, meta.TokenAuthMethods, hasSecret, hasKey),
	}
	revocation = token
	if configured == "" && len(meta.RevocationAuthMethods) > 0 {
		r := *token
		r.Method = clientauth.Choose("", meta.RevocationAuthMethods, hasSecret, hasKey)
		revocation = &r
	}
	return token, revocation
}
