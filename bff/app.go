package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/proxy"
	"github.com/bffgate/bffgate/session"
)

// app is one configured SPA at run time: its config, its OIDC discovery
// (and what discovery builds: ID token and logout token verifiers, the
// oauth2 config) and its proxies. The handlers of its routes are in site.
type app struct {
	cfg AppConfig
	idp *http.Client
	// disc is shared with the app this one replaced in a reload when
	// their OIDC settings are the same (reload.go).
	disc *discovery
	// replay and clients are what build needs for the logout verifier.
	replay   logout.ReplayCache
	clients  clientRegistry
	apis     []apiRoute
	frontend *proxy.Proxy
	// refresher hands out the sessions' access tokens, refreshing them
	// when due; it can refresh once discovery set its oauth2 config.
	refresher *proxy.Refresher
	// clientTokens obtains the client tokens of the APIs with token
	// "client" and "user_or_client" (nil: none has).
	clientTokens *proxy.ClientTokens
	// decryptionKeys open encrypted logout tokens (from
	// id_token_decryption_key_file).
	decryptionKeys []jose.JSONWebKey
	// assertionKey signs private_key_jwt client assertions (from
	// client_assertion_key_file), or is nil.
	assertionKey *clientauth.Key
	// redirectURL is the absolute callback URL (from server.public_url).
	redirectURL string
	// jwksOverflow counts tokens refused because jwks_max_waiters waited.
	jwksOverflow prometheus.Counter
	// dpop is set when the app has dpop = true.
	dpop *dpopParts
}

// clientRegistry learns each app's logout client once discovery is done
// (logout.Service).
type clientRegistry interface {
	Register(*logout.Client)
}

// appParts are what every app is built from.
type appParts struct {
	public         *url.URL
	transport      http.RoundTripper
	idp            *http.Client
	sessions       *session.Manager
	logger         *slog.Logger
	replay         logout.ReplayCache
	clients        clientRegistry
	trustForwarded bool
	jwksOverflow   *prometheus.CounterVec // by app
	// clientTokenStore shares client tokens between replicas (nil: per
	// process).
	clientTokenStore proxy.ClientTokenStore
	clientGrants     *prometheus.CounterVec // by app, result
	// live cuts a session's WebSockets and streams when it ends.
	live *proxy.Live
	// tracing: the gateway traces, and the proxies pass its span on.
	tracing bool
}

type apiRoute struct {
	path  string
	proxy *proxy.Proxy
	// anonymous: the API is also served without a session (its token
	// kind needs none).
	anonymous bool
}

// newApp builds an app. With prev (the app it replaces in a reload, whose
// OIDC settings are the same: sameIdentity), it takes over prev's
// discovery, refresher and keys instead of building them again, so that
// no discovery is fetched again; only its proxies are new.
func newApp(cfg AppConfig, parts appParts, prev *app) (*app, error) {
	a := &app{
		cfg:         cfg,
		idp:         parts.idp,
		replay:      parts.replay,
		clients:     parts.clients,
		redirectURL: parts.public.String() + cfg.PathPrefix + "bff/callback",
	}
	if prev != nil {
		a.disc, a.refresher, a.jwksOverflow, a.clientTokens = prev.disc, prev.refresher, prev.jwksOverflow, prev.clientTokens
		a.decryptionKeys, a.assertionKey = prev.decryptionKeys, prev.assertionKey
		a.dpop, a.idp = prev.dpop, prev.idp
	} else if err := a.buildIdentity(parts); err != nil {
		return nil, err
	}
	// The upstreams see the public host, not whatever Host a client sent;
	// an app with hosts was chosen by its Host, which is then one of them.
	forwardedHost := parts.public.Host
	if len(cfg.Hosts) > 0 {
		forwardedHost = ""
	}
	for i, api := range cfg.APIs {
		target, _ := url.Parse(api.Upstream)
		pc := proxy.Config{
			Name:            UpstreamName(cfg.Name, api.Path),
			Target:          target,
			Token:           proxyToken(api.Token),
			IsGatewayCookie: session.IsGatewayCookie,
			Cookies:         proxy.CookiePolicy{Names: api.Cookies},
			WriteError:      writeJSONError,
			TrustForwarded:  parts.trustForwarded,
			ForwardedHost:   forwardedHost,
			Live:            parts.live,
			Propagate:       parts.tracing,
		}
		if usesClientToken(api.Token) {
			pc.ClientTokens = a.clientTokens.For(api.clientGrant())
		}
		if api.StripPrefix {
			pc.StripPrefix = strings.TrimSuffix(api.Path, "/")
		}
		transport := parts.transport
		if a.dpop != nil {
			pc.DPoP = api.DPoP == nil || *api.DPoP
			pc.DPoPKeys = a.dpop.keys
			if pc.DPoP {
				transport = a.dpop.transport(transport)
			}
		}
		p, err := proxy.New(pc, transport, a.refresher, parts.sessions, parts.logger)
		if err != nil {
			return nil, fmt.Errorf("apis[%d]: %w", i, err)
		}
		a.apis = append(a.apis, apiRoute{path: api.Path, proxy: p, anonymous: api.Token != proxy.TokenUser && api.Token != proxy.TokenNone})
	}
	target, _ := url.Parse(cfg.Frontend)
	fp, err := proxy.New(proxy.Config{Name: cfg.Name + ":frontend", Target: target, Token: "none",
		IsGatewayCookie: session.IsGatewayCookie, Cookies: proxy.CookiePolicy{All: true}, WriteError: writeJSONError, TrustForwarded: parts.trustForwarded,
		ForwardedHost: forwardedHost, Propagate: parts.tracing}, parts.transport, nil, parts.sessions, parts.logger)
	if err != nil {
		return nil, fmt.Errorf("frontend: %w", err)
	}
	a.frontend = fp
	return a, nil
}

// startDiscovery runs discovery in the background (counted in wg) until
// it succeeds, ctx ends or the app is retired (disc.halt).
func (a *app) startDiscovery(ctx context.Context, wg *sync.WaitGroup, logger *slog.Logger) {
	ctx = oidc.ClientContext(ctx, a.idp)
	a.disc.start(ctx, wg, a.cfg.Issuer, logger.With("app", a.cfg.Name), func(ctx context.Context, op *oidc.Provider) (*provider, error) {
		p, err := a.build(op)
		if err == nil {
			// The first login finds the IdP's keys cached instead of
			// fetching them on its way; if this fails, it fetches them.
			if err := p.keys.Prefetch(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("jwks prefetch failed; the first token fetches the keys", "app", a.cfg.Name, "err", err)
			}
		}
		return p, err
	})
}

// buildIdentity builds what the app's OIDC settings make: its discovery
// (not started), refresher and keys.
func (a *app) buildIdentity(parts appParts) error {
	cfg := &a.cfg
	if parts.jwksOverflow != nil {
		a.jwksOverflow = parts.jwksOverflow.WithLabelValues(cfg.Name)
	}
	a.disc = newDiscovery()
	if cfg.DPoP {
		a.dpop = newDPoPParts()
		a.idp = a.dpop.client(parts.idp)
	}
	rc := proxy.RefresherConfig{HTTPClient: a.idp, Leeway: cfg.RefreshMargin}
	if a.dpop != nil {
		rc.DPoPKeys = a.dpop.keys
	}
	if cfg.isFAPI2() {
		rc.Check = fapi2AccessToken
	}
	if cfg.UserInfoOnRefresh {
		rc.Claims = func(ctx context.Context, s *session.Session, at string) (json.RawMessage, error) {
			return a.refreshedClaims(ctx, s, at, parts.logger)
		}
	}
	a.refresher = proxy.NewRefresher(rc, parts.sessions, parts.logger)
	// Made whether or not an API uses client tokens yet: a reload that
	// keeps this identity may add one (discovery sets its endpoint once).
	logger := parts.logger
	if logger != nil {
		logger = logger.With("app", cfg.Name)
	}
	ctc := proxy.ClientTokensConfig{
		Issuer: cfg.Issuer, ClientID: cfg.ClientID, HTTPClient: parts.idp,
		Leeway: cfg.RefreshMargin, Store: parts.clientTokenStore,
	}
	if parts.clientGrants != nil {
		ctc.Observe = func(result string) { parts.clientGrants.WithLabelValues(cfg.Name, result).Inc() }
	}
	a.clientTokens = proxy.NewClientTokens(ctc, logger)
	switch {
	case cfg.DecryptionKey != nil:
		a.decryptionKeys = []jose.JSONWebKey{{Key: cfg.DecryptionKey}}
	case cfg.DecryptionKeyFile != "": // fail closed: tokens must be encrypted
		return errors.New("id_token_decryption_key_file: the key was not loaded")
	}
	key, err := cfg.AssertionKey()
	if err != nil {
		return err
	}
	a.assertionKey = key
	logAssertionKey(parts.logger, cfg.Name, key)
	return nil
}

// build turns a discovered provider into the app's OIDC parts.
func (a *app) build(op *oidc.Provider) (*provider, error) {
	var meta providerMeta
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("decode discovery document: %w", err)
	}
	if a.cfg.isFAPI2() {
		// FAPI 2.0: the callback requires iss (RFC 9207), advertised or not.
		meta.ISSParameter = true
	}
	p := &provider{oidc: op, meta: meta}
	par, err := parEndpoint(a.cfg.PAR, meta)
	if err != nil {
		return nil, err
	}
	p.par = par
	// One rate-limited key set serves ID tokens and logout tokens.
	keys, err := logout.NewRemoteKeySet(logout.RemoteKeySetConfig{
		JWKSURL:         meta.JWKSURI,
		RefetchInterval: a.cfg.JWKSRefetchInterval,
		RefetchWait:     a.cfg.JWKSRefetchWait,
		MaxWaiters:      a.cfg.JWKSMaxWaiters,
		Overflow:        a.jwksOverflow,
		HTTPClient:      a.idp,
	})
	if err != nil {
		return nil, fmt.Errorf("jwks_uri: %w", err)
	}
	p.keys = keys
	p.verifier = oidc.NewVerifier(a.cfg.Issuer, keys, &oidc.Config{
		ClientID:             a.cfg.ClientID,
		SupportedSigningAlgs: a.cfg.IDTokenSigningAlgs,
	})
	p.userinfo = newUserinfoVerifier(a.cfg.Issuer, a.cfg.ClientID, keys, a.cfg.IDTokenSigningAlgs)
	lv, err := logout.NewVerifier(logout.VerifierConfig{
		Issuer:           a.cfg.Issuer,
		ClientID:         a.cfg.ClientID,
		ClientSecret:     a.cfg.ClientSecret,
		KeySet:           keys,
		SigningAlgs:      a.cfg.IDTokenSigningAlgs,
		TrustedAudiences: a.cfg.TrustedAudiences,
		ClockSkew:        a.cfg.ClockSkew,
		MaxTokenAge:      a.cfg.MaxTokenAge,
		AllowMissingExp:  a.cfg.AllowMissingExp,
		RequireTyp:       a.cfg.RequireTyp,
		ExpectedTyp:      a.cfg.ExpectedTyp,
		DecryptionKeys:   a.decryptionKeys,
		Replay:           a.replay,
	})
	if err != nil {
		return nil, fmt.Errorf("logout token verifier: %w", err)
	}
	tokenAuth, revocationAuth := a.clientAuth(meta)
	a.clients.Register(&logout.Client{
		App: a.cfg.Name, Issuer: a.cfg.Issuer, ClientID: a.cfg.ClientID, Verifier: lv,
		FrontchannelSIDOnly: a.cfg.FrontchannelSIDOnly,
		Revocation: logout.RevocationTarget{
			App: a.cfg.Name, Endpoint: meta.RevocationEndpoint, Auth: revocationAuth,
		},
	})
	endpoint := op.Endpoint()
	endpoint.AuthStyle = tokenAuth.AuthStyle() // never auto-detect: no failed first try
	p.oauth2 = &oauth2.Config{
		ClientID:     a.cfg.ClientID,
		ClientSecret: tokenAuth.OAuth2Secret(),
		Endpoint:     endpoint,
		RedirectURL:  a.redirectURL,
		Scopes:       a.cfg.Scopes,
	}
	p.auth = tokenAuth
	a.refresher.SetTokenEndpoint(endpoint.TokenURL, tokenAuth)
	if a.clientTokens != nil {
		a.clientTokens.SetTokenEndpoint(endpoint.TokenURL, tokenAuth)
	}
	return p, nil
}
