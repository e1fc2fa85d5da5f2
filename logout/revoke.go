package logout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// TokenRevoker revokes refresh tokens at the IdP's revocation_endpoint
// (RFC 7009) in the background, so that a logout is never delayed or
// failed by the IdP. Close waits for the revocations under way.
type TokenRevoker struct {
	client  *http.Client
	timeout time.Duration
	logger  *slog.Logger
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// RevocationTarget is where and as whom to revoke.
type RevocationTarget struct {
	App          string
	Endpoint     string
	ClientID     string
	ClientSecret string
}

// NewTokenRevoker returns a TokenRevoker using client; each revocation
// gets timeout (default 5s).
func NewTokenRevoker(client *http.Client, timeout time.Duration, logger *slog.Logger) *TokenRevoker {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &TokenRevoker{client: client, timeout: timeout, logger: logger, ctx: ctx, cancel: cancel}
}

// RevokeAsync starts revoking refreshToken and returns at once.
func (r *TokenRevoker) RevokeAsync(t RevocationTarget, refreshToken string) {
	if t.Endpoint == "" || refreshToken == "" {
		return
	}
	r.wg.Go(func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		defer cancel()
		if err := r.Revoke(ctx, t, refreshToken); err != nil {
			r.logger.Warn("refresh token revocation failed", "app", t.App, "err", err)
		}
	})
}

// Revoke revokes refreshToken now.
func (r *TokenRevoker) Revoke(ctx context.Context, t RevocationTarget, refreshToken string) error {
	form := url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revocation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(t.ClientID), url.QueryEscape(t.ClientSecret))
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

// Close waits for the revocations under way until ctx ends, then cancels
// those left.
func (r *TokenRevoker) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		<-done
	}
	r.cancel()
}
