package dpop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Nonces remembers the last DPoP-Nonce each origin (scheme://host) sent.
// It holds at most max origins (default 1024); a new origin beyond that
// replaces an arbitrary one. Safe for concurrent use.
type Nonces struct {
	mu  sync.RWMutex
	m   map[string]string
	max int
}

// NewNonces returns an empty Nonces for at most max origins.
func NewNonces(max int) *Nonces {
	if max <= 0 {
		max = 1024
	}
	return &Nonces{m: make(map[string]string), max: max}
}

// Get returns origin's last nonce, or "".
func (n *Nonces) Get(origin string) string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.m[origin]
}

// Set remembers origin's nonce.
func (n *Nonces) Set(origin, nonce string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.m[origin]; !ok && len(n.m) >= n.max {
		for k := range n.m {
			delete(n.m, k)
			break
		}
	}
	n.m[origin] = nonce
}

// maxNonce bounds a nonce the gateway keeps.
const maxNonce = 512

type ctxKey struct{}

type binding struct {
	key   *Key
	token string
}

// WithKey returns ctx under which Transport signs a proof with key for
// every request (the token endpoint: no access token, no ath).
func WithKey(ctx context.Context, key *Key) context.Context {
	return context.WithValue(ctx, ctxKey{}, binding{key: key})
}

// WithToken returns ctx under which Transport sends accessToken as
// "Authorization: DPoP <token>" with a proof of key that has its ath (a
// request to a resource server).
func WithToken(ctx context.Context, key *Key, accessToken string) context.Context {
	return context.WithValue(ctx, ctxKey{}, binding{key: key, token: accessToken})
}

// Transport adds a DPoP proof to the requests whose context has a key
// (WithKey, WithToken), and passes others on untouched. It remembers the
// DPoP-Nonce of every response in Nonces, and retries a request once
// with the new nonce when the server demands one: a token endpoint's 400
// with error use_dpop_nonce, a resource server's 401 whose
// WWW-Authenticate says error="use_dpop_nonce". A request whose body
// cannot be sent again (no GetBody) is not retried: its challenge goes
// back to the caller, and the next request carries the nonce.
type Transport struct {
	Base   http.RoundTripper // nil: http.DefaultTransport
	Nonces *Nonces           // required
	Now    func() time.Time  // nil: time.Now
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	b, ok := req.Context().Value(ctxKey{}).(binding)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !ok || b.key == nil {
		return base.RoundTrip(req)
	}
	origin := req.URL.Scheme + "://" + req.URL.Host
	nonce := t.Nonces.Get(origin)
	out, err := t.prove(req, b, nonce)
	if err != nil {
		return nil, err
	}
	resp, err := base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	fresh := resp.Header.Get("DPoP-Nonce")
	if fresh == "" || len(fresh) > maxNonce {
		return resp, nil
	}
	t.Nonces.Set(origin, fresh)
	if fresh == nonce || !challenged(resp, b.token != "") {
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if out, err = t.prove(req, b, fresh); err != nil {
		return nil, err
	}
	if req.GetBody != nil {
		if out.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("dpop nonce retry: %w", err)
		}
		if refresh, ok := req.Context().Value(formKey{}).(func(url.Values) error); ok {
			if err := refreshForm(out, refresh); err != nil {
				return nil, fmt.Errorf("dpop nonce retry: %w", err)
			}
		}
	}
	return base.RoundTrip(out)
}

// prove returns a copy of req with the proof (and the DPoP
// Authorization, for a resource request).
func (t *Transport) prove(req *http.Request, b binding, nonce string) (*http.Request, error) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	proof, err := b.key.Proof(req.Method, req.URL, b.token, nonce, now())
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set("DPoP", proof)
	if b.token != "" {
		out.Header.Set("Authorization", "DPoP "+b.token)
	}
	return out, nil
}

// challenged reports whether resp asks for a nonce: a resource server's
// 401 with WWW-Authenticate error="use_dpop_nonce", or an authorization
// server's 400 with the OAuth error use_dpop_nonce (its body is read and
// put back).
func challenged(resp *http.Response, resource bool) bool {
	if resource || resp.StatusCode == http.StatusUnauthorized {
		if resp.StatusCode != http.StatusUnauthorized {
			return false
		}
		for _, v := range resp.Header.Values("WWW-Authenticate") {
			if strings.Contains(v, "use_dpop_nonce") {
				return true
			}
		}
		return false
	}
	if resp.StatusCode != http.StatusBadRequest {
		return false
	}
	orig := resp.Body
	body, err := io.ReadAll(io.LimitReader(orig, 16<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), orig), orig}
	return err == nil && bytes.Contains(body, []byte(`"use_dpop_nonce"`))
}

type formKey struct{}

// WithFormRefresh returns ctx under which the nonce retry of a form POST
// first lets refresh change the form: a private_key_jwt assertion, whose
// jti is single use, must be a new one.
func WithFormRefresh(ctx context.Context, refresh func(url.Values) error) context.Context {
	return context.WithValue(ctx, formKey{}, refresh)
}

// maxRetryForm bounds the form body read again for a retry.
const maxRetryForm = 1 << 20

// refreshForm replaces out's form body with refresh's version of it.
func refreshForm(out *http.Request, refresh func(url.Values) error) error {
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxRetryForm))
	out.Body.Close()
	if err != nil {
		return err
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return err
	}
	if err := refresh(form); err != nil {
		return err
	}
	enc := form.Encode()
	out.Body = io.NopCloser(strings.NewReader(enc))
	out.ContentLength = int64(len(enc))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(enc)), nil }
	return nil
}
