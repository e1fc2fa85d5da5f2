package logout

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	"github.com/bffgate/bffgate/internal/spans"
	"github.com/bffgate/bffgate/session"
)

// Sessions ends and finds sessions; *session.Manager implements it.
type Sessions interface {
	End(ctx context.Context, id string, cause session.Cause) (*session.Session, error)
	EndBySID(ctx context.Context, app, iss, sid, sub string, cause session.Cause) ([]*session.Session, error)
	EndBySub(ctx context.Context, app, iss, sub string, cause session.Cause) ([]*session.Session, error)
	List(ctx context.Context, f session.Filter) ([]*session.Session, error)
}

// Client is one app as the logout service sees it: an OIDC client of one
// issuer, with the verifier for its logout tokens and where its refresh
// tokens are revoked.
type Client struct {
	App      string
	Issuer   string
	ClientID string
	Verifier *Verifier
	// Revocation is the IdP's revocation_endpoint and the client's
	// credentials; an empty Endpoint means no revocation.
	Revocation RevocationTarget
	// FrontchannelSIDOnly accepts front-channel requests with sid and no
	// iss, taking Issuer as iss (Microsoft Entra ID sends only sid).
	FrontchannelSIDOnly bool
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// IdPClient calls the IdPs' revocation endpoints; nil means
	// http.DefaultClient.
	IdPClient  *http.Client
	Revocation RevokerConfig
	// HandleKey keys the logout handles (Handle); the gateway derives it
	// from the session secret, so that replicas agree. Empty means a
	// random key for this process.
	HandleKey []byte
}

// ReasonNoClient is the rejection reason of a token that names no
// configured issuer and audience.
const ReasonNoClient = "no_client"

// StoreError means the sessions could not be ended: the back-channel
// endpoint answers 400 application_error, as the spec asks for a failed
// logout.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "end sessions: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// Result is what one accepted logout token did for one app.
type Result struct {
	App   string
	Token *Token
	Ended []*session.Session
}

// Service runs every logout path for every app: back-channel,
// front-channel (by iss+sid, or by the session cookie alone),
// RP-initiated and admin. As a session.Observer it revokes the refresh
// token of every session a logout ended, on a bounded worker pool.
type Service struct {
	sessions Sessions
	revoker  *TokenRevoker
	logger   *slog.Logger
	tokens   *prometheus.CounterVec
	front    *prometheus.CounterVec // front-channel requests by app, result
	// handleKey keys the logout handles.
	handleKey []byte
	// hints are the settings hints already logged (once each).
	hints hinted

	mu      sync.RWMutex
	clients []*Client
	algs    []jose.SignatureAlgorithm // every client's SigningAlgs
}

// NewService returns a Service with no clients yet; Register adds each
// app once its IdP's discovery is done. Its revocation workers run until
// Close.
func NewService(cfg ServiceConfig, sessions Sessions, reg prometheus.Registerer, logger *slog.Logger) *Service {
	s := &Service{
		sessions: sessions,
		revoker:  NewTokenRevoker(cfg.IdPClient, cfg.Revocation, reg, logger),
		logger:   logger,
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_logout_tokens_total",
			Help: "Back-channel logout tokens by app, result (accepted, rejected, error), reason (the failed check) and switch (the setting that would accept a token rejected only by checks it relaxes).",
		}, []string{"app", "result", "reason", "switch"}),
	}
	s.front = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bffgate_frontchannel_logouts_total",
		Help: "Front-channel logout requests by app, result (ended, no_session: nothing stored, rejected) and switch (the setting that would accept a rejected request).",
	}, []string{"app", "result", "switch"})
	if s.handleKey = cfg.HandleKey; len(s.handleKey) == 0 {
		s.handleKey = make([]byte, 32)
		rand.Read(s.handleKey)
	}
	reg.MustRegister(s.tokens, s.front)
	return s
}

// Metric returns the logout-token counter (for tests and dashboards).
func (s *Service) Metric() *prometheus.CounterVec { return s.tokens }

// Register adds (or replaces, by app name) a client.
func (s *Service) Register(c *Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = slices.DeleteFunc(s.clients, func(o *Client) bool { return o.App == c.App })
	s.clients = append(s.clients, c)
	for _, a := range c.Verifier.algs {
		if !slices.Contains(s.algs, a) {
			s.algs = append(s.algs, a)
		}
	}
}

// Unregister removes the app's client (an app a configuration reload
// removed or replaced): its logout tokens are refused from then on.
func (s *Service) Unregister(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = slices.DeleteFunc(s.clients, func(o *Client) bool { return o.App == app })
}

// candidates returns the clients a token may be for, and the token
// parsed once with the union of their algorithms (each verifier then pins
// its own): those whose issuer and client_id the token names. A token
// that cannot be read (a JWE, or garbage) is tried against every client,
// so that each verifier gives its own precise reason.
func (s *Service) candidates(raw string) ([]*Client, *parsed) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := parse(raw, s.algs)
	iss, aud, ok := p.routing()
	if !ok {
		return slices.Clone(s.clients), p
	}
	var out []*Client
	for _, c := range s.clients {
		if c.Issuer == iss && slices.Contains(aud, c.ClientID) {
			out = append(out, c)
		}
	}
	return out, p
}

// Backchannel validates a logout token and ends the sessions it names, for
// every app it is valid for. The replay check is made once per token,
// after every app's verifier accepted it and before any session ends; if
// ending an app's sessions fails, the jti is forgotten so that the IdP's
// retry is not taken for a replay. It returns a *ValidationError (400
// invalid_request), a *StoreError or *ReplayCacheError (400
// application_error), or the results.
func (s *Service) Backchannel(ctx context.Context, raw string) (_ []Result, err error) {
	ctx, span := spans.Start(ctx, tracerName, "logout.backchannel")
	defer func() { spans.End(span, err) }()
	clients, p := s.candidates(raw)
	if len(clients) == 0 {
		err := invalid(ReasonNoClient, "no configured app has this issuer and audience", nil)
		s.reject(ctx, "", err)
		return nil, err
	}
	var accepted []Result
	var caches []ReplayCache
	var ttl time.Duration
	var firstErr error
	for _, c := range clients {
		vctx, vspan := spans.Start(ctx, tracerName, "logout.verify_token", attribute.String("bffgate.app", c.App))
		tok, err := c.Verifier.check(vctx, p)
		spans.End(vspan, err)
		if err != nil {
			s.reject(ctx, c.App, err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		accepted = append(accepted, Result{App: c.App, Token: tok})
		caches = append(caches, c.Verifier.replay)
		ttl = max(ttl, c.Verifier.replayTTL())
	}
	if len(accepted) == 0 {
		return nil, firstErr
	}
	// Every verifier read the same iss and jti from the same payload.
	tok := accepted[0].Token
	if err := checkReplay(ctx, caches, tok, ttl); err != nil {
		for _, r := range accepted {
			s.reject(ctx, r.App, err)
		}
		return nil, err
	}
	for i, r := range accepted {
		ended, err := s.end(ctx, r.App, r.Token)
		if err != nil {
			s.tokens.WithLabelValues(r.App, "error", "store", "").Inc()
			s.logger.ErrorContext(ctx, "back-channel logout failed", "app", r.App, "err", err)
			if ferr := forget(ctx, caches, tok); ferr != nil {
				s.logger.ErrorContext(ctx, "logout token replay record kept after a failed logout", "app", r.App, "err", ferr)
			}
			return nil, &StoreError{Err: err}
		}
		accepted[i].Ended = ended
		s.tokens.WithLabelValues(r.App, "accepted", "", "").Inc()
		s.logger.InfoContext(ctx, "back-channel logout", "app", r.App, "sid_hash", session.Hash(r.Token.SID), "sub_hash", session.Hash(r.Token.Subject), "sessions_ended", len(ended))
	}
	return accepted, nil
}

func (s *Service) end(ctx context.Context, app string, tok *Token) ([]*session.Session, error) {
	if tok.SID != "" {
		return s.sessions.EndBySID(ctx, app, tok.Issuer, tok.SID, tok.Subject, session.CauseBackchannel)
	}
	return s.sessions.EndBySub(ctx, app, tok.Issuer, tok.Subject, session.CauseBackchannel)
}

// reject counts and logs (as an audit event) a refused token.
func (s *Service) reject(ctx context.Context, app string, err error) {
	var ve *ValidationError
	var re *ReplayCacheError
	switch {
	case errors.As(err, &ve):
		s.tokens.WithLabelValues(app, "rejected", ve.Reason, ve.Switch).Inc()
		s.logger.WarnContext(ctx, "logout token rejected", "event", "logout_token_rejected", "app", app, "check", ve.Reason, "description", ve.Description)
		s.logHint(ctx, "a logout token was", app, ve)
	case errors.As(err, &re):
		s.tokens.WithLabelValues(app, "error", "replay_cache", "").Inc()
		s.logger.ErrorContext(ctx, "logout token replay check failed", "app", app, "err", re.Err)
	default:
		s.tokens.WithLabelValues(app, "error", "internal", "").Inc()
		s.logger.ErrorContext(ctx, "logout token check failed", "app", app, "err", err)
	}
}

// routing reads iss and aud from a parsed JWS's claims without trusting
// them, only to pick the clients whose verifiers will check the token.
func (p *parsed) routing() (iss string, aud []string, ok bool) {
	if p.jws == nil {
		return "", nil, false
	}
	c, err := p.claimsOf(p.jws)
	if err != nil {
		return "", nil, false
	}
	if iss, ok = str(c, "iss"); !ok {
		return "", nil, false
	}
	aud, ok = audience(c["aud"])
	return iss, aud, ok
}

// SessionEnded implements session.Observer: when a logout (or a new
// login replacing the session) ended a session holding a refresh token,
// the token is revoked at the IdP in the background. Expiry and a failed
// refresh leave nothing worth revoking.
func (s *Service) SessionEnded(_ context.Context, cause session.Cause, sess *session.Session) {
	if cause == session.CauseExpired || cause == session.CauseRefreshFailed || sess.RefreshToken == "" {
		return
	}
	if c := s.client(sess.App); c != nil {
		s.revoker.RevokeAsync(c.Revocation, sess.RefreshToken)
	}
}

// Close drains the refresh-token revocations until ctx ends (see
// TokenRevoker.Close).
func (s *Service) Close(ctx context.Context) error { return s.revoker.Close(ctx) }
