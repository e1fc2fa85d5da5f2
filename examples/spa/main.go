// Command spa serves the bffgate demo single-page app: static files embedded
// from static/, meant to sit behind the gateway (which proxies every path it
// does not own to this server). Standard library only.
//
//	go run ./examples/spa -listen 127.0.0.1:3000
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"
)

//go:embed static
var staticFS embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "spa:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("spa", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "127.0.0.1:3000", "address to listen on")
	if err := flags.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))

	root, err := fs.Sub(staticFS, "static")
	if err != nil {
		return fmt.Errorf("static files: %w", err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           logRequests(logger, newHandler(root)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Info("spa listening", "url", "http://"+ln.Addr().String())

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

// newHandler serves the files of root with a strict CSP. A path that names
// no file is retried without its leading segments (so /app2/app.js finds
// app.js when the gateway forwards an app's path prefix unchanged). A path
// whose last segment looks like a file name (it has a dot: favicon.ico,
// missing.js) and names no file is 404; anything else is an app route and
// gets index.html. /bff/ and /api/ belong to the gateway and answer 404
// here if they ever reach the SPA.
func newHandler(root fs.FS) http.Handler {
	files := http.FileServerFS(root)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /bff/", http.NotFound)
	mux.HandleFunc("GET /api/", http.NotFound)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		name := resolve(root, r.URL.Path)
		if name == "index.html" && path.Ext(r.URL.Path) != "" && path.Base(r.URL.Path) != "index.html" {
			http.NotFound(w, r)
			return
		}
		if name == "index.html" {
			w.Header().Set("Cache-Control", "no-cache")
			// Serve index.html itself: FileServer would redirect /index.html to ./
			http.ServeFileFS(w, r, root, name)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		files.ServeHTTP(w, r2)
	})
	return mux
}

// resolve maps a URL path to a file name in root, falling back to index.html.
func resolve(root fs.FS, urlPath string) string {
	name := strings.Trim(urlPath, "/")
	for name != "" {
		if fs.ValidPath(name) {
			if info, err := fs.Stat(root, name); err == nil && !info.IsDir() {
				return name
			}
		}
		_, rest, ok := strings.Cut(name, "/")
		if !ok {
			break
		}
		name = rest
	}
	return "index.html"
}

func setSecurityHeaders(h http.Header) {
	// frame-src: the silent login's hidden iframe starts at the gateway
	// (this origin) and goes through the IdP, whose address this demo
	// does not know; an app that does names its IdP here.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self' http: https:; frame-ancestors 'self'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r)
		logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
