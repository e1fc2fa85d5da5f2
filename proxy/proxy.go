// Package proxy is the gateway's authenticated reverse proxy: one
// httputil.ReverseProxy per upstream, built once at start-up, that
// attaches the session's access token (refreshing it when needed), keeps
// the gateway's own cookies from the upstream and answers upstream
// failures with 502/504 JSON that reveals nothing about the upstream.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bffgate/bffgate/internal/dpop"
	"github.com/bffgate/bffgate/session"
)

// The values of Config.Token: which access token the upstream gets, the
// token types of Duende BFF (TokenType / RequiredTokenType) by another
// name.
const (
	// TokenUser attaches the session's access token; a session is
	// required (Duende's User).
	TokenUser = "user"
	// TokenClient attaches the gateway's own client token
	// (client-credentials grant), with or without a session (Client).
	TokenClient = "client"
	// TokenUserOrClient attaches the session's token, or without a
	// session the client token (UserOrClient).
	TokenUserOrClient = "user_or_client"
	// TokenUserOrNone attaches the session's token, or without a session
	// nothing (UserOrNone).
	TokenUserOrNone = "user_or_none"
	// TokenNone attaches nothing, with or without a session (whether the
	// API needs one is the caller's decision).
	TokenNone = "none"
)

// tokenKinds are the valid values of Config.Token.
var tokenKinds = []string{TokenUser, TokenClient, TokenUserOrClient, TokenUserOrNone, TokenNone}

// ValidToken reports whether v is a value of Config.Token.
func ValidToken(v string) bool { return slices.Contains(tokenKinds, v) }

// usesUser and usesClient report which token sources a kind needs.
func usesUser(kind string) bool {
	return kind == TokenUser || kind == TokenUserOrClient || kind == TokenUserOrNone
}
func usesClient(kind string) bool { return kind == TokenClient || kind == TokenUserOrClient }

// Config describes one upstream.
type Config struct {
	// Name is the upstream's name, recorded in the session's Upstreams
	// and used in logs. Required.
	Name string
	// Target is the upstream's base URL, from upstream.ParseTarget.
	// Request paths are appended to its path. Required.
	Target *url.URL
	// Token is which access token the upstream gets: TokenUser (the zero
	// value means TokenUser), TokenClient, TokenUserOrClient,
	// TokenUserOrNone or TokenNone.
	Token string
	// ClientTokens gives the client token of TokenClient and
	// TokenUserOrClient (ClientTokens.For). Required for those.
	ClientTokens ClientTokenSource
	// StripPrefix, if set, is removed from the start of the request path
	// before it is appended to Target's path. By default the full request
	// path is forwarded.
	StripPrefix string
	// FlushInterval is how often response bodies are flushed to the
	// client while they are copied; 0 (the default) buffers, a negative
	// value flushes after every write. httputil.ReverseProxy flushes
	// immediately anyway for text/event-stream responses and for responses
	// of unknown length (chunked streams), so SSE works with the default.
	FlushInterval time.Duration
	// IsGatewayCookie reports whether a cookie name belongs to the gateway
	// (session.IsGatewayCookie). Such cookies are removed from requests
	// to the upstream, and Set-Cookie headers from the upstream that
	// would overwrite them are dropped. Required.
	IsGatewayCookie func(name string) bool
	// Cookies is which of the client's other cookies the upstream gets.
	// The zero value passes none.
	Cookies CookiePolicy
	// WriteError answers the requests the proxy cannot serve (401, 502,
	// 504) with the gateway's error body. Required.
	WriteError ErrorWriter
	// TrustForwarded passes the inbound X-Forwarded-For chain and an
	// X-Forwarded-Proto of https on to the upstream. Set it only when the
	// caller removes those headers from requests that did not come through
	// a trusted proxy. Default false: the upstream sees only the peer.
	TrustForwarded bool
	// ForwardedHost is the X-Forwarded-Host the upstream gets (the
	// gateway's public host) unless a trusted proxy (TrustForwarded) sent
	// one. Empty: the request's Host.
	ForwardedHost string
	// DPoPKeys is set for the APIs of an app with DPoP (RFC 9449): a
	// session whose token is DPoP-bound (session.Session.TokenType "DPoP")
	// then calls the API with "Authorization: DPoP <token>" and a fresh
	// proof of its key (session.Session.DPoPKey), which the transport (a
	// dpop.Transport) signs. Nil: bearer tokens only, as before.
	DPoPKeys *dpop.Keys
	// DPoP is false for an API of such an app that takes only bearer
	// tokens (dpop = false): a DPoP-bound token is then refused with 502,
	// since it would not work there and must not be sent unbound.
	DPoP bool
	// Live, if set, tracks the requests of a session whose connection
	// outlives an ordinary request (WebSockets, streaming responses), so
	// that they are cut when the session ends. Nil tracks none.
	Live *Live
	// Propagate sets the upstream request's W3C traceparent to the span
	// in the request's context (the gateway's span of the request). Set
	// it when the gateway traces; without it the browser's traceparent
	// passes untouched and the request path does no tracing work.
	Propagate bool
}

// CookiePolicy says which cookies of a request reach the upstream; the
// gateway's own never do. The zero value passes none (an API that
// authenticates with the bearer).
type CookiePolicy struct {
	// All passes every cookie but the gateway's (a frontend).
	All bool
	// Names, when All is false, are the only cookies passed.
	Names []string
}

// keeps reports whether the policy passes the cookie name.
func (c CookiePolicy) keeps(name string, isGateway func(string) bool) bool {
	if isGateway(name) {
		return false
	}
	return c.All || slices.Contains(c.Names, name)
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: must be set"))
	}
	switch {
	case c.Target == nil:
		errs = append(errs, errors.New("upstream: must be set"))
	case c.Target.Scheme != "http" && c.Target.Scheme != "https", c.Target.Host == "":
		errs = append(errs, errors.New("upstream: must be an absolute http(s) URL"))
	case c.Target.User != nil, c.Target.RawQuery != "", c.Target.Fragment != "":
		errs = append(errs, errors.New("upstream: must not contain userinfo, query or fragment"))
	}
	if c.Token != "" && !ValidToken(c.Token) {
		errs = append(errs, fmt.Errorf("token: must be one of %q", tokenKinds))
	}
	if usesClient(c.Token) && c.ClientTokens == nil {
		errs = append(errs, fmt.Errorf("ClientTokens: must be set for token %q", c.Token))
	}
	if c.StripPrefix != "" && !strings.HasPrefix(c.StripPrefix, "/") {
		errs = append(errs, errors.New("strip_prefix: must start with /"))
	}
	if c.IsGatewayCookie == nil {
		errs = append(errs, errors.New("IsGatewayCookie: must be set"))
	}
	if c.WriteError == nil {
		errs = append(errs, errors.New("WriteError: must be set"))
	}
	return errors.Join(errs...)
}

// TokenSource returns a valid access token for a session. The production
// implementation is Refresher.
type TokenSource interface {
	// AccessToken returns s's access token, refreshed if needed. It
	// returns an error wrapping ErrSessionEnded when the session can no
	// longer be used (and has been ended).
	AccessToken(ctx context.Context, s *session.Session) (string, error)
}

// UsageRecorder persists that a session has called an upstream, so that
// its sign-out can be passed on to the upstreams it used
// (*session.Manager).
type UsageRecorder interface {
	// MarkUpstream records that the session with that id called the
	// named upstream, changing nothing else. The proxy calls it when the
	// request's session has not used the upstream yet; concurrent
	// requests of one session may call it more than once, so it must be
	// idempotent.
	MarkUpstream(ctx context.Context, id, name string) error
}

// Proxy is the http.Handler for one upstream. A caller with the request's
// session (the bff's API route) calls ServeSession.
type Proxy struct {
	cfg    Config
	tokens TokenSource
	used   UsageRecorder
	logger *slog.Logger
	rp     *httputil.ReverseProxy
}

// New returns the proxy for cfg's upstream. transport carries the
// requests (upstream.NewTransport); tokens (the app's Refresher) may be
// nil when cfg.Token is TokenNone; used is the session manager. A nil
// logger discards.
func New(cfg Config, transport http.RoundTripper, tokens TokenSource, used UsageRecorder, logger *slog.Logger) (*Proxy, error) {
	if cfg.Token == "" {
		cfg.Token = TokenUser
	}
	errs := []error{cfg.Validate()}
	if transport == nil {
		errs = append(errs, errors.New("transport: must not be nil"))
	}
	if tokens == nil && usesUser(cfg.Token) {
		errs = append(errs, fmt.Errorf("token source: must not be nil for token %q", cfg.Token))
	}
	if used == nil {
		errs = append(errs, errors.New("usage recorder: must not be nil"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("proxy %q: %w", cfg.Name, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("upstream", cfg.Name)
	p := &Proxy{cfg: cfg, tokens: tokens, used: used, logger: logger}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      transport,
		FlushInterval:  cfg.FlushInterval,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandler:   p.handleError,
		ModifyResponse: p.modifyResponse,
		BufferPool:     bufferPool{},
	}
	return p, nil
}

// copyBuffers recycles the 32 KiB buffers ReverseProxy copies bodies
// through; without a pool every response allocates one (measured: a
// tenth of the gateway's CPU went to garbage collection). It holds
// *[copyBufferSize]byte: a pointer, so that Put stores it without
// allocating (a *[]byte would have to be allocated on every Put).
var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

const copyBufferSize = 32 << 10

type bufferPool struct{}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[copyBufferSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) >= copyBufferSize {
		copyBuffers.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
	}
}

// ServeHTTP proxies r, which has no session, to the upstream (with token
// "user": a 401 JSON answer).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.ServeSession(w, r, nil)
}

// ServeSession proxies r of the session s (nil for none) to the upstream
// with the access token its Config.Token says. Without a session (or when
// the session has ended) token "user" answers 401 JSON, "user_or_client"
// uses the client token, "user_or_none" forwards without a token. When no
// token could be obtained it answers 502 JSON (the IdP refused the grant,
// or a session's refresh failed for a transient reason) or 503 JSON (the
// IdP could not be reached for a client token).
func (p *Proxy) ServeSession(w http.ResponseWriter, r *http.Request, s *session.Session) {
	ctx := r.Context()
	kind := p.cfg.Token
	if kind == TokenUser || (s != nil && usesUser(kind)) {
		tok, err := p.userToken(ctx, s)
		switch {
		case err == nil:
			// The client's own Authorization never passes: it is replaced
			// here (rewrite copies it to the outgoing request; no request
			// copy on the hot path), and removed by rewrite for token "none".
			if p.cfg.DPoPKeys != nil && isDPoP(s.TokenType) {
				var ok bool
				if r, ok = p.bindDPoP(w, r, s, tok); !ok {
					return
				}
			} else {
				r.Header["Authorization"] = []string{"Bearer " + tok}
			}
			p.markUsed(ctx, s)
			p.serve(w, r, s)
			return
		case errors.Is(err, ErrSessionEnded) && kind != TokenUser:
			s = nil // the session has ended: as without one
		case errors.Is(err, ErrSessionEnded):
			p.cfg.WriteError(w, r, http.StatusUnauthorized, codeUnauthorized, descUnauthorized)
			return
		case ctx.Err() != nil:
			return // the client is gone
		default:
			p.logger.ErrorContext(ctx, "get access token", "app", s.App, "err", err)
			p.cfg.WriteError(w, r, http.StatusBadGateway, codeBadGateway, descNoToken)
			return
		}
	}
	switch kind {
	case TokenClient, TokenUserOrClient:
		if !p.attachClientToken(w, r) {
			return
		}
	case TokenUserOrNone:
		delete(r.Header, "Authorization") // forwarded anonymously
	}
	p.markUsed(ctx, s)
	p.serve(w, r, s)
}

// serve hands r to the reverse proxy; a session's request goes through
// Live (Config.Live), which cuts it if it is still streaming when the
// session ends.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, s *session.Session) {
	if l := p.cfg.Live; l != nil && s != nil {
		p.serveLive(l, w, r, s)
		return
	}
	p.rp.ServeHTTP(w, r)
}

// userToken returns the session's access token; without a session, the
// error wraps ErrSessionEnded.
func (p *Proxy) userToken(ctx context.Context, s *session.Session) (string, error) {
	if s == nil {
		return "", ErrSessionEnded
	}
	return p.tokens.AccessToken(ctx, s)
}

// attachClientToken puts the client token on r, or answers that none
// could be obtained and returns false.
func (p *Proxy) attachClientToken(w http.ResponseWriter, r *http.Request) bool {
	ctx := r.Context()
	tok, err := p.cfg.ClientTokens.ClientToken(ctx)
	switch {
	case err == nil:
		r.Header["Authorization"] = []string{"Bearer " + tok}
		return true
	case ctx.Err() != nil:
		return false // the client is gone
	case rejected(err):
		p.logger.ErrorContext(ctx, "get client token: the IdP refused the grant", "err", err)
		p.cfg.WriteError(w, r, http.StatusBadGateway, codeBadGateway, descNoClientToken)
	default:
		p.logger.ErrorContext(ctx, "get client token", "err", err)
		p.cfg.WriteError(w, r, http.StatusServiceUnavailable, codeTokenUnavailable, descTokenUnavailable)
	}
	return false
}

// markUsed records that the session s (nil: none) called the upstream.
func (p *Proxy) markUsed(ctx context.Context, s *session.Session) {
	if s == nil || s.UsedUpstream(p.cfg.Name) {
		return
	}
	if err := p.used.MarkUpstream(ctx, s.ID, p.cfg.Name); err != nil {
		// The request can still be served; the upstream may miss
		// this session's logout if the record is never saved.
		p.logger.WarnContext(ctx, "record upstream use", "app", s.App, "err", err)
	} else {
		s.AddUpstream(p.cfg.Name)
	}
}
