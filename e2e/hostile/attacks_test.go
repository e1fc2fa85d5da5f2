package hostile

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// floodClient keeps workers connections to the gateway alive.
func floodClient(workers int) *http.Client {
	return &http.Client{
		Timeout:       15 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// flood runs fn(i) for i = 0, 1, … on workers goroutines while more()
// holds, and at most max times; it returns the count sent and the first
// error.
func flood(ctx context.Context, workers, max int, more func(sent int) bool, fn func(ctx context.Context, i int) error) (int, error) {
	var sent atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for ctx.Err() == nil {
				i := int(sent.Add(1)) - 1
				if i >= max || !more(i) {
					return nil
				}
				if err := fn(ctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return int(min(sent.Load(), int64(max))), err
}

// do sends req and returns its status, draining the body.
func do(c *http.Client, req *http.Request) (int, error) {
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

const sidChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

func randomSID(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = sidChars[rand.IntN(len(sidChars))]
	}
	return string(b)
}

// frontchannelRequest is one request of the front-channel flood: the
// configured issuer and a made-up sid, at most 255 bytes (200: no session
// ends, nothing is stored) or, every 16th, 256 to 4096 bytes (400).
func (s *stack) frontchannelRequest(ctx context.Context, c *http.Client, i int) error {
	n, want := 16+rand.IntN(240), http.StatusOK
	if i%16 == 15 {
		n, want = 256+rand.IntN(4096-256), http.StatusBadRequest
	}
	q := url.Values{"iss": {s.op.URL}, "sid": {randomSID(n)}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.public+"/bff/frontchannel-logout?"+q.Encode(), nil)
	got, err := do(c, req)
	if err != nil {
		return fmt.Errorf("front-channel flood #%d: %w", i, err)
	}
	if got != want {
		return errStatus(fmt.Sprintf("front-channel flood #%d (sid of %d bytes)", i, n), got, want)
	}
	return nil
}

// junkKidRequest posts a logout token signed with a kid the IdP never
// published: 400, after at most the wait for the next allowed JWKS fetch.
// A request cut short because the flood is over is not an error.
func (s *stack) junkKidRequest(ctx context.Context, c *http.Client, token string) error {
	form := url.Values{"logout_token": {token}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.public+"/bff/backchannel-logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	got, err := do(c, req)
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return fmt.Errorf("junk-kid token: %w", err)
	case got != http.StatusBadRequest:
		return errStatus("junk-kid token", got, http.StatusBadRequest)
	}
	return nil
}

// pathTricks are request targets that some upstream server (Tomcat,
// Jetty, IIS, nginx) would read as climbing out of /api/, or that carry
// a backslash or a control character. Each must be answered 400 by the
// gateway and never reach an upstream.
var pathTricks = []string{
	"/api/..;/admin",
	"/api/..;x=1/admin",
	"/api/.;/hello",
	"/api/..%3B/admin",
	"/api/%2e%2e;/admin",
	"/api/%2e%2e/admin",
	"/api/.%2e/admin",
	"/api/..%2fadmin",
	"/api/%252e%252e/admin",
	"/api/%25252e%25252e/admin",
	"/api/..\\admin",
	"/api/..%5Cadmin",
	"/api/..%5cadmin",
	"/api/..%255cadmin",
	"/api/..%00/admin",
	"/api/..%09/admin",
	"/api/hello%00",
	"/api/hello%0d%0aX-Injected:%201",
	"/api/..%20/admin",
	"/api/.../admin",
	"/api/%c0%ae%c0%ae/admin",
	"/api/hello/..;/..;/admin",
	"/..;/api/hello",
	"/static/..;/..;/admin",
	"/static/..%5c..%5cadmin",
}

// rawWant sends the request head (with the cookie, if any) and checks
// that the gateway answers want; what names the request in errors.
func (s *stack) rawWant(what, head, cookie string, want int) error {
	if cookie != "" {
		head += "\r\nCookie: " + cookie
	}
	got, err := raw(s.gwAddr, head, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if got != want {
		return errStatus(what, got, want)
	}
	return nil
}

// pathTrick sends one trick, with and without a signed-in user's cookie.
func (s *stack) pathTrick(path, cookie string) error {
	head := "GET " + path + " HTTP/1.1\r\nHost: " + s.gwAddr + "\r\nX-CSRF: 1"
	return s.rawWant("path trick "+path, head, cookie, http.StatusBadRequest)
}

// repeatReader is n bytes of b repeated.
func repeatReader(b string, n int64) io.Reader {
	return io.LimitReader(&loop{s: b}, n)
}

type loop struct {
	s string
	i int
}

func (l *loop) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = l.s[l.i%len(l.s)]
		l.i++
	}
	return len(p), nil
}

// bigBodySize is the size of the multipart and form bodies posted to the
// gateway's own endpoints: far over every cap there.
const bigBodySize = 16 << 20

// bigBody posts bigBodySize bytes of contentType to path (with cookie,
// when set) and wants one of the statuses.
func (s *stack) bigBody(path, contentType, cookie string, want ...int) error {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d", path, s.gwAddr, contentType, bigBodySize)
	if cookie != "" {
		head += "\r\nCookie: " + cookie
	}
	var part string
	if strings.HasPrefix(contentType, "multipart/") {
		part = "--XBOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n" +
			"Content-Type: application/octet-stream\r\n\r\n" + strings.Repeat("A", 4096) + "\r\n"
	} else {
		part = "returnUrl=" + strings.Repeat("A", 4096) + "&"
	}
	got, err := raw(s.gwAddr, head, repeatReader(part, bigBodySize))
	if err != nil {
		return fmt.Errorf("POST %s (%s, %d bytes): %w", path, contentType, bigBodySize, err)
	}
	for _, w := range want {
		if got == w {
			return nil
		}
	}
	return errStatus(fmt.Sprintf("POST %s (%s, %d bytes)", path, contentType, bigBodySize), got, want...)
}

// spoofHeaders are forwarded headers a client outside trusted_proxies
// sends to pose as a proxy; the first X-Forwarded-For line is empty.
const spoofHeaders = "X-Forwarded-For: \r\nX-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\n" +
	"X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n" +
	"X-Forwarded-Prefix: /admin\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n" +
	"Forwarded: for=1.2.3.4;host=evil.example;proto=https\r\nX_Forwarded_For: 1.2.3.4\r\nTrue-Client-IP: 1.2.3.4"

// spoof sends the spoofed headers with Host: evil.example to path.
func (s *stack) spoof(path, cookie string, n int) error {
	head := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: evil.example\r\nX-CSRF: 1\r\nX-Hostile-Spoof: %d\r\n%s", path, n, spoofHeaders)
	return s.rawWant("spoofed headers to "+path, head, cookie, http.StatusOK)
}

// forbiddenUpstream are headers (lower case, "_" as "-") that an upstream
// must not get from an untrusted client.
var forbiddenUpstream = map[string]bool{
	"x-real-ip": true, "x-forwarded-port": true, "x-forwarded-prefix": true, "x-original-url": true,
	"x-rewrite-url": true, "forwarded": true, "true-client-ip": true,
}

// checkSpoofed checks what an upstream got from the spoofing requests:
// only the headers the gateway itself sets, from the gateway's own view.
func (s *stack) checkSpoofed(rec *recorder, want int) error {
	got := 0
	for _, r := range rec.requests() {
		if r.header.Get("X-Hostile-Spoof") == "" {
			continue
		}
		got++
		h := r.header
		if xff := h.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
			return fmt.Errorf("%s: upstream got X-Forwarded-For %q, want [127.0.0.1]", r.uri, xff)
		}
		if v := h.Get("X-Forwarded-Host"); v != s.gwAddr {
			return fmt.Errorf("%s: upstream got X-Forwarded-Host %q, want the public host %q", r.uri, v, s.gwAddr)
		}
		if v := h.Get("X-Forwarded-Proto"); v != "http" {
			return fmt.Errorf("%s: upstream got X-Forwarded-Proto %q, want http", r.uri, v)
		}
		for k, v := range h {
			norm := strings.ReplaceAll(strings.ToLower(k), "_", "-")
			if forbiddenUpstream[norm] || (norm == "x-forwarded-for" && k != "X-Forwarded-For") {
				return fmt.Errorf("%s: upstream got %s: %q from an untrusted client", r.uri, k, v)
			}
		}
	}
	if got != want {
		return fmt.Errorf("upstream got %d spoofing requests, want %d", got, want)
	}
	return nil
}
