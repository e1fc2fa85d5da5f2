package logout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/internal/clientauth"
)

// RevokerConfig configures a TokenRevoker. Zero values mean the defaults.
type RevokerConfig struct {
	Workers   int           // revocations run at once; default 4
	QueueSize int           // revocations waiting for a worker; default 1024
	Timeout   time.Duration // per revocation; default 5s
}

// TokenRevoker revokes refresh tokens at the IdP's revocation_endpoint
// (RFC 7009) in the background, so that a logout is never delayed or
// failed by the IdP. A fixed pool of workers serves a bounded queue: a
// revocation that finds the queue full is dropped, counted and logged
// (the token still expires at the IdP). Close drains the queue.
type TokenRevoker struct {
	client  *http.Client
	timeout time.Duration
	logger  *slog.Logger
	total   *prometheus.CounterVec

	ctx    context.Context // canceled when Close gives up
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
	queue  chan revocation
}

// RevocationTarget is where and as whom to revoke.
type RevocationTarget struct {
	App      string
	Endpoint string
	// Auth authenticates the client; nil means client_secret_basic with
	// ClientID and ClientSecret.
	Auth         *clientauth.Client
	ClientID     string
	ClientSecret string
}

type revocation struct {
	target RevocationTarget
	token  string
}

// Results of a revocation: the values of the result label.
const (
	revoked = "revoked"
	failed  = "failed"
	dropped = "dropped"
)

// NewTokenRevoker starts the workers of a TokenRevoker that uses client,
// and registers its counter, bffgate_token_revocations_total, with reg.
func NewTokenRevoker(client *http.Client, cfg RevokerConfig, reg prometheus.Registerer, logger *slog.Logger) *TokenRevoker {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &TokenRevoker{
		client: client, timeout: cfg.Timeout, logger: logger,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_token_revocations_total",
			Help: "Refresh-token revocations after a logout, by app and result (revoked, failed, dropped: the queue was full or the gateway stopping).",
		}, []string{"app", "result"}),
		ctx: ctx, cancel: cancel,
		queue: make(chan revocation, cfg.QueueSize),
	}
	reg.MustRegister(r.total)
	for range cfg.Workers {
		r.wg.Go(r.work)
	}
	return r
}

// RevokeAsync queues the revocation of refreshToken and returns at once.
// It reports false if the revocation was dropped: the queue is full or
// the revoker closed.
func (r *TokenRevoker) RevokeAsync(t RevocationTarget, refreshToken string) bool {
	if t.Endpoint == "" || refreshToken == "" {
		return true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.closed {
		select {
		case r.queue <- revocation{target: t, token: refreshToken}:
			return true
		default:
		}
	}
	r.total.WithLabelValues(t.App, dropped).Inc()
	r.logger.Warn("refresh token revocation dropped", "app", t.App, "closed", r.closed, "queue", cap(r.queue))
	return false
}

// work revokes queued tokens until the queue is closed and empty. Once
// Close gave up, what is left is dropped.
func (r *TokenRevoker) work() {
	for job := range r.queue {
		if r.ctx.Err() != nil {
			r.total.WithLabelValues(job.target.App, dropped).Inc()
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		err := r.Revoke(ctx, job.target, job.token)
		cancel()
		if err != nil {
			r.total.WithLabelValues(job.target.App, failed).Inc()
			r.logger.Warn("refresh token revocation failed", "app", job.target.App, "err", err)
			continue
		}
		r.total.WithLabelValues(job.target.App, revoked).Inc()
	}
}

// Revoke revokes refreshToken now.
func (r *TokenRevoker) Revoke(ctx context.Context, t RevocationTarget, refreshToken string) error {
	auth := t.Auth
	if auth == nil {
		auth = &clientauth.Client{ID: t.ClientID, Secret: t.ClientSecret, Method: clientauth.SecretBasic}
	}
	form := url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}}
	req, err := auth.NewRequest(ctx, t.Endpoint, form)
	if err != nil {
		return fmt.Errorf("revocation request: %w", err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("revocation request: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation endpoint answered %d", resp.StatusCode)
	}
	return nil
}

// Close stops taking revocations and waits until the queued ones are
// done or ctx ends; then it cancels those under way, drops the rest and
// returns ctx's error. Its workers are gone when it returns.
func (r *TokenRevoker) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("refresh token revocations: %w", ctx.Err())
		r.cancel()
		<-done
	}
	r.cancel()
	return err
}
