package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/patrickmn/go-cache"
)

// maxLogoutBody caps the back-channel request body.
const maxLogoutBody = 64 << 10

// logoutReceiverConfig configures the API's back-channel logout endpoint,
// where the gateway (as the issuer) tells it that a session ended.
type logoutReceiverConfig struct {
	// Gateway is the gateway's issuer URL (its server.public_url); its
	// discovery document and JWKS are found from it on first use.
	Gateway string
	// Audience is the aud the gateway puts in this API's logout tokens
	// ([[apps.downstream]] audience).
	Audience string
}

// logoutReceiver validates the gateway's logout tokens (Back-Channel Logout
// 1.0) with go-oidc, and forgets what the API cached for that user.
type logoutReceiver struct {
	cfg    logoutReceiverConfig
	client *http.Client
	logger *slog.Logger
	// forget drops cached introspection results of a subject.
	forget func(sub string)
	seen   *cache.Cache // jti -> struct{}: replays within the token lifetime

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

func newLogoutReceiver(cfg logoutReceiverConfig, client *http.Client, logger *slog.Logger, forget func(string)) *logoutReceiver {
	return &logoutReceiver{
		cfg: cfg, client: client, logger: logger, forget: forget,
		seen: cache.New(10*time.Minute, time.Minute),
	}
}

// discover finds the gateway's keys once discovery succeeds; a failure is
// retried on the next request, so the API may start before the gateway.
func (lr *logoutReceiver) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.verifier != nil {
		return lr.verifier, nil
	}
	// The keys are fetched later with this context too: keep the client,
	// not the request's deadline.
	provider, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), lr.client), lr.cfg.Gateway)
	if err != nil {
		return nil, fmt.Errorf("gateway discovery: %w", err)
	}
	lr.verifier = provider.VerifierContext(oidc.ClientContext(context.Background(), lr.client),
		&oidc.Config{ClientID: lr.cfg.Audience})
	return lr.verifier, nil
}

// ServeHTTP is POST /logout: 200 with an empty body for a valid logout
// token, 400 with a JSON error otherwise (Back-Channel Logout 1.0 §2.8),
// always Cache-Control: no-store.
func (lr *logoutReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		lr.reject(w, r, "the body must be application/x-www-form-urlencoded", nil)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		lr.reject(w, r, "the body is not a valid form", err)
		return
	}
	tokens := r.PostForm["logout_token"]
	if len(tokens) != 1 || tokens[0] == "" {
		lr.reject(w, r, "exactly one logout_token is required", nil)
		return
	}
	verifier, err := lr.discover(r.Context())
	if err != nil {
		// Without the gateway's keys the logout cannot be done: §2.8 says
		// 400 for a failed logout too.
		lr.reject(w, r, "the logout could not be completed", err)
		return
	}
	// VerifyLogout checks the signature against the gateway's JWKS, iss,
	// aud, exp, the events member, sub or sid, and that there is no nonce.
	lt, err := verifier.VerifyLogout(r.Context(), tokens[0])
	if err != nil {
		lr.reject(w, r, "invalid logout_token", err)
		return
	}
	if lt.IssuedAt.IsZero() {
		lr.reject(w, r, "invalid logout_token", errors.New("iat is missing"))
		return
	}
	if err := lr.seen.Add(lt.TokenID, struct{}{}, cache.DefaultExpiration); err != nil {
		lr.reject(w, r, "invalid logout_token", errors.New("jti replayed"))
		return
	}
	if lt.Subject != "" && lr.forget != nil {
		lr.forget(lt.Subject)
	}
	// The demo's identifiers are hashed in logs like everywhere else:
	// sha256, first 6 bytes, hex (see hashForLog).
	lr.logger.Info("valid logout token",
		"iss", lt.Issuer, "sub_hash", hashForLog(lt.Subject), "sid_hash", hashForLog(lt.SessionID))
	w.WriteHeader(http.StatusOK)
}

func (lr *logoutReceiver) reject(w http.ResponseWriter, r *http.Request, description string, err error) {
	args := []any{"reason", description}
	if err != nil {
		args = append(args, "err", err)
	}
	lr.logger.Warn("logout token rejected", args...)
	setLogAttr(r, slog.String("logout", "rejected"))
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": description})
}
