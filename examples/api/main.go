// Command api is the bffgate demo's protected API: GET /api/hello answers only
// requests bearing an access token that the IdP's introspection endpoint
// (RFC 7662) says is active. The gateway forwards the full request path and
// adds "Authorization: Bearer <access token>", or with dpop = true
// "Authorization: DPoP <access token>" and a DPoP proof, which this API
// checks against the token's cnf.jkt (dpop.go). POST /logout receives the
// gateway's back-channel logout tokens and validates them with go-oidc
// against the gateway's discovery document.
//
//	DEMO_CLIENT_SECRET=demo-secret-change-me go run ./examples/api \
//	    -listen 127.0.0.1:4000 -issuer http://127.0.0.1:9000 -client-id demo \
//	    -gateway http://127.0.0.1:8080
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

const defaultClientSecret = "demo-secret-change-me"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

// config is what the command line and the environment say.
type config struct {
	listen       string
	issuer       string
	clientID     string
	clientSecret string // env DEMO_CLIENT_SECRET
	cacheTTL     time.Duration
	gateway      string // the gateway's issuer URL, for POST /logout; empty: off
	audience     string // aud of the gateway's logout tokens for this API
	resource     string // the API's resource indicator: JWT access tokens for it are accepted; empty: off
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	flags := flag.NewFlagSet("api", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&cfg.listen, "listen", "127.0.0.1:4000", "address to listen on")
	flags.StringVar(&cfg.issuer, "issuer", "http://127.0.0.1:9000", "OpenID Provider issuer URL (discovery)")
	flags.StringVar(&cfg.clientID, "client-id", "demo", "client id used to authenticate at the introspection endpoint")
	flags.StringVar(&cfg.clientSecret, "client-secret", "", "client secret (default: env DEMO_CLIENT_SECRET, else "+defaultClientSecret+")")
	flags.DurationVar(&cfg.cacheTTL, "cache-ttl", 30*time.Second, "how long an active introspection result is cached (at most 30s)")
	flags.StringVar(&cfg.gateway, "gateway", "http://127.0.0.1:8080", "the gateway's issuer URL (server.public_url): POST /logout validates its logout tokens against its discovery document; empty turns POST /logout off")
	flags.StringVar(&cfg.audience, "audience", "demo-api", "the aud of the gateway's logout tokens for this API ([[apps.downstream]] audience)")
	flags.StringVar(&cfg.resource, "resource", "urn:bffgate:demo-api", "the API's resource indicator (RFC 8707): JWT access tokens (RFC 9068) with this aud, such as the gateway's client token, are verified with the IdP's keys; empty: introspection only")
	if err := flags.Parse(args); err != nil {
		return config{}, err
	}
	if cfg.clientSecret == "" {
		cfg.clientSecret = getenv("DEMO_CLIENT_SECRET")
	}
	if cfg.clientSecret == "" {
		cfg.clientSecret = defaultClientSecret
	}
	var errs []error
	if cfg.issuer == "" {
		errs = append(errs, errors.New("-issuer: required"))
	}
	if cfg.clientID == "" {
		errs = append(errs, errors.New("-client-id: required"))
	}
	if cfg.cacheTTL < 0 || cfg.cacheTTL > 30*time.Second {
		errs = append(errs, errors.New("-cache-ttl: must be between 0 and 30s"))
	}
	if cfg.gateway != "" && cfg.audience == "" {
		errs = append(errs, errors.New("-audience: required with -gateway"))
	}
	return cfg, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))

	httpClient := &http.Client{Timeout: 5 * time.Second}
	verifier := newIntrospector(introspectorConfig{
		Issuer:       cfg.issuer,
		ClientID:     cfg.clientID,
		ClientSecret: cfg.clientSecret,
		CacheTTL:     cfg.cacheTTL,
	}, httpClient)

	var tokens tokenVerifier = verifier
	if cfg.resource != "" {
		tokens = newJWTAccessTokens(oidc.ClientContext(ctx, httpClient), cfg.issuer, cfg.resource, verifier)
	}

	var logoutHandler http.Handler
	if cfg.gateway != "" {
		logoutHandler = newLogoutReceiver(logoutReceiverConfig{Gateway: cfg.gateway, Audience: cfg.audience},
			httpClient, logger, verifier.forgetSubject)
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           logRequests(logger, routes(logger, tokens, logoutHandler)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Info("api listening", "url", "http://"+ln.Addr().String(), "issuer", cfg.issuer, "client_id", cfg.clientID,
		"gateway", cfg.gateway, "audience", cfg.audience, "resource", cfg.resource)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// routes is the whole HTTP surface; add new endpoints here. logout is the
// back-channel logout receiver (nil: POST /logout is not served).
func routes(logger *slog.Logger, verifier tokenVerifier, logout http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.Handle("GET /api/hello", requireToken(logger, verifier, http.HandlerFunc(handleHello)))
	mux.Handle("GET /api/ws", requireToken(logger, verifier, handleEcho(logger)))
	mux.Handle("GET /api/ticks", requireToken(logger, verifier, http.HandlerFunc(handleTicks)))
	if logout != nil {
		mux.Handle("POST /logout", logout)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "not_found"})
	})
	return mux
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func handleHello(w http.ResponseWriter, r *http.Request) {
	tok, _ := tokenFromContext(r.Context())
	who := tok.Name
	if who == "" {
		who = tok.Subject
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"message":   "hello " + who,
		"sub":       tok.Subject,
		"name":      tok.Name,
		"client_id": tok.ClientID,
		"scope":     tok.Scope,
		"aud":       tok.Audience,
		"jwt":       tok.JWT,
		"token_ok":  true,
		"dpop":      tok.JKT != "",
	})
}

// tokenVerifier says whether an access token is active, and for whom.
type tokenVerifier interface {
	Verify(ctx context.Context, token string) (tokenInfo, error)
}

// requireToken answers 401 unless the request carries an active bearer token;
// the token's details travel on in the request context.
func requireToken(logger *slog.Logger, verifier tokenVerifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, raw, ok := accessToken(r.Header.Get("Authorization"))
		if !ok {
			unauthorized(w, "invalid_request", "missing bearer token")
			return
		}
		tok, err := verifier.Verify(r.Context(), raw)
		if err == nil {
			err = checkDPoP(r, scheme, raw, tok)
		}
		switch {
		case errors.Is(err, errInactive):
			unauthorized(w, "invalid_token", "token is not active")
			return
		case errors.Is(err, errDPoP):
			dpopUnauthorized(w, err)
			return
		case err != nil:
			logger.Error("verify token", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"})
			return
		}
		setLogAttr(r, slog.String("sub_hash", hashForLog(tok.Subject)))
		next.ServeHTTP(w, r.WithContext(newTokenContext(r.Context(), tok)))
	})
}

// accessToken returns the scheme ("bearer" or "dpop") and the token of
// an Authorization header.
func accessToken(header string) (scheme, token string, ok bool) {
	scheme, token, ok = strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "bearer" && scheme != "dpop") || token == "" {
		return "", "", false
	}
	return scheme, token, true
}

func unauthorized(w http.ResponseWriter, code, description string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error=%q, error_description=%q`, code, description))
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// hashForLog shortens an identifier for logs without revealing it: the
// first 6 bytes of its SHA-256, in hex ("" stays "").
func hashForLog(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

type tokenContextKey struct{}

func newTokenContext(ctx context.Context, tok tokenInfo) context.Context {
	return context.WithValue(ctx, tokenContextKey{}, tok)
}

func tokenFromContext(ctx context.Context) (tokenInfo, bool) {
	tok, ok := ctx.Value(tokenContextKey{}).(tokenInfo)
	return tok, ok
}

// logRequests logs one line per request: never the Authorization header.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		attrs := &logAttrs{}
		start := time.Now()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), logAttrsKey{}, attrs)))
		args := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start)}
		for _, a := range attrs.list {
			args = append(args, a)
		}
		logger.Info("request", args...)
	})
}

type logAttrsKey struct{}

type logAttrs struct{ list []slog.Attr }

// setLogAttr adds an attribute to the request's log line.
func setLogAttr(r *http.Request, a slog.Attr) {
	if attrs, ok := r.Context().Value(logAttrsKey{}).(*logAttrs); ok {
		attrs.list = append(attrs.list, a)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController (flushes, the WebSocket's hijack)
// reach the server's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
