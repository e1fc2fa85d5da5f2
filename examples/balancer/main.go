// Command balancer is the replicas demo's load balancer: round robin over
// the gateway replicas with no stickiness, so that consecutive requests land
// on different replicas, and one line per request naming the replica that
// served it. Standard library only; for the demo, not for production.
//
//	go run ./examples/balancer -listen 127.0.0.1:8080 \
//	    -backends r1=http://127.0.0.1:8081,r2=http://127.0.0.1:8082
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "balancer:", err)
		os.Exit(1)
	}
}

// backend is one replica: its name in the log lines and its proxy.
type backend struct {
	name  string
	proxy *httputil.ReverseProxy
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("balancer", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "127.0.0.1:8080", "address to listen on")
	list := flags.String("backends", "", "comma-separated name=URL of the replicas, e.g. r1=http://127.0.0.1:8081")
	if err := flags.Parse(args); err != nil {
		return err
	}
	backends, err := parseBackends(*list)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	out := &lineWriter{w: stdout}
	srv := &http.Server{Handler: newHandler(backends, out), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "balancer on http://%s, round robin over %d replicas\n", ln.Addr(), len(backends))

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
		srv.Close() // event streams do not end by themselves
	}
	return nil
}

func parseBackends(list string) ([]backend, error) {
	var backends []backend
	for _, item := range strings.Split(list, ",") {
		name, raw, ok := strings.Cut(strings.TrimSpace(item), "=")
		u, err := url.Parse(raw)
		if !ok || name == "" || err != nil || u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("-backends: %q is not name=http://host:port", item)
		}
		backends = append(backends, backend{name: name, proxy: newProxy(u)})
	}
	return backends, nil
}

// newProxy forwards to target, keeping the client's Host (the gateway's
// public_url stays the balancer's origin) and adding X-Forwarded-*.
func newProxy(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			http.Error(w, "replica unreachable", http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
}

// newHandler sends each request to the next replica in turn and writes
// one line when it is answered: replica, method, path (never the query,
// which carries codes and states), status and duration. An event stream's
// line comes when the stream opens.
func newHandler(backends []backend, out io.Writer) http.Handler {
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := backends[(next.Add(1)-1)%uint64(len(backends))]
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		rec.onHeader = func(status int) {
			if strings.HasSuffix(r.URL.Path, "/bff/events") {
				fmt.Fprintf(out, "%s  %s %s → %d (event stream open)\n", b.name, r.Method, r.URL.Path, status)
			}
		}
		start := time.Now()
		b.proxy.ServeHTTP(rec, r)
		if !strings.HasSuffix(r.URL.Path, "/bff/events") {
			fmt.Fprintf(out, "%s  %s %s → %d  %s\n", b.name, r.Method, r.URL.Path, rec.status, time.Since(start).Round(100*time.Microsecond))
		}
	})
}

// recorder notes the status; Unwrap lets the proxy flush event streams.
type recorder struct {
	http.ResponseWriter
	status   int
	onHeader func(int)
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	if r.onHeader != nil && code >= 200 {
		r.onHeader(code)
		r.onHeader = nil
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// lineWriter serialises the lines of concurrent requests.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
