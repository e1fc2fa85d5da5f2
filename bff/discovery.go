package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/logout"
)

// provider is what discovery learned about an app's IdP.
type provider struct {
	oidc     *oidc.Provider
	verifier *oidc.IDTokenVerifier // ID tokens
	userinfo *oidc.IDTokenVerifier // signed userinfo answers
	meta     providerMeta
	oauth2   *oauth2.Config
	// auth authenticates the client at the token endpoint (and at the
	// pushed authorization request endpoint).
	auth *clientauth.Client
	// par is the pushed authorization request endpoint logins use; ""
	// sends the authorization request through the browser.
	par string
	// keys verify ID tokens, signed userinfo and logout tokens.
	keys *logout.RemoteKeySet
}

// providerMeta holds the discovery fields go-oidc does not expose.
type providerMeta struct {
	JWKSURI             string   `json:"jwks_uri"`
	EndSessionEndpoint  string   `json:"end_session_endpoint"`
	RevocationEndpoint  string   `json:"revocation_endpoint"`
	CheckSessionIframe  string   `json:"check_session_iframe"`
	BackchannelSupport  bool     `json:"backchannel_logout_supported"`
	FrontchannelSupport bool     `json:"frontchannel_logout_supported"`
	IDTokenAlgs         []string `json:"id_token_signing_alg_values_supported"`
	// TokenAuthMethods and RevocationAuthMethods are the client
	// authentication methods of the token and revocation endpoints.
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	RevocationAuthMethods []string `json:"revocation_endpoint_auth_methods_supported"`
	// PAREndpoint and RequirePAR: pushed authorization requests (RFC 9126).
	PAREndpoint string `json:"pushed_authorization_request_endpoint"`
	RequirePAR  bool   `json:"require_pushed_authorization_requests"`
	// ISSParameter: authorization responses carry iss (RFC 9207).
	ISSParameter bool `json:"authorization_response_iss_parameter_supported"`
}

// discovery runs OIDC discovery for one app in the background, retrying
// with exponential backoff while the IdP is unreachable. A configuration
// error (the IdP's discovery contradicts the app's config) ends it.
type discovery struct {
	p      atomic.Pointer[provider]
	failed atomic.Pointer[error] // the configuration error that ended it
	done   chan struct{}
	// stop ends a started discovery (start); nil until then. Start and
	// Reload set and read it under Gateway.mu.
	stop context.CancelFunc
}

func newDiscovery() *discovery { return &discovery{done: make(chan struct{})} }

// start runs discovery in the background, counted in wg, until it is
// done, ctx ends or halt is called.
func (d *discovery) start(ctx context.Context, wg *sync.WaitGroup, issuer string, logger *slog.Logger, build func(context.Context, *oidc.Provider) (*provider, error)) {
	ctx, d.stop = context.WithCancel(ctx)
	wg.Go(func() { d.run(ctx, issuer, logger, build) })
}

// started reports whether start was called.
func (d *discovery) started() bool { return d.stop != nil }

// halt stops a started discovery and waits until it has returned, so
// that it registers nothing any more.
func (d *discovery) halt() {
	if d.stop == nil {
		return
	}
	d.stop()
	<-d.done
}

func (d *discovery) get() *provider { return d.p.Load() }

// err returns the configuration error that stopped discovery, or nil.
func (d *discovery) err() error {
	if e := d.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// issuerMismatch turns go-oidc's issuer mismatch into the error an
// operator can act on; other errors are returned as they are.
func issuerMismatch(err error) error {
	var mm *oidc.IssuerMismatchError
	if errors.As(err, &mm) {
		return fmt.Errorf("issuer %q is not the one the IdP reports: the IdP calls itself %q; set issuer to that", mm.Provided, mm.Discovered)
	}
	return err
}

// run blocks until discovery succeeds or ctx ends. build turns the
// discovered provider into the app's runtime parts.
func (d *discovery) run(ctx context.Context, issuer string, logger *slog.Logger, build func(context.Context, *oidc.Provider) (*provider, error)) {
	defer close(d.done)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	p, err := backoff.Retry(ctx, func() (*provider, error) {
		op, err := oidc.NewProvider(ctx, issuer)
		if mm := issuerMismatch(err); mm != err {
			return nil, backoff.Permanent(mm) // retrying cannot help
		}
		if err != nil {
			return nil, err
		}
		p, err := build(ctx, op)
		if err != nil {
			return nil, backoff.Permanent(err)
		}
		return p, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		logger.Warn("oidc discovery failed; retrying", "issuer", issuer, "retry_in", next.String(), "err", err)
	}))
	if err != nil {
		if ctx.Err() == nil {
			d.failed.Store(&err)
			logger.Error("oidc discovery: configuration error", "issuer", issuer, "err", err)
		}
		return
	}
	d.p.Store(p)
	logger.Info("oidc discovery done", "issuer", issuer)
}
