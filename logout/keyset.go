package logout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	maxJWKSSize  = 1 << 20          // bounds the JWKS response read
	fetchTimeout = 10 * time.Second // bounds one JWKS fetch

	// Defaults of RemoteKeySetConfig.
	DefaultRefetchInterval = 5 * time.Second
	DefaultRefetchWait     = 5 * time.Second
	DefaultMaxWaiters      = 64
)

var (
	errUnknownKID     = errors.New("key id not in the provider's key set")
	errBadSignature   = errors.New("no key in the provider's key set verifies the signature")
	errRefetchLimited = errors.New("jwks refetch rate limited")
	errTooManyWaiters = errors.New("too many tokens waiting for a jwks refetch")
)

// KeySet verifies the signature of a parsed JWS against the OpenID
// Provider's keys. It returns an error wrapping errUnknownKID when the
// token's kid is not among them.
type KeySet interface {
	VerifyJWS(ctx context.Context, jws *jose.JSONWebSignature) error
}

// RemoteKeySetConfig configures a RemoteKeySet.
type RemoteKeySetConfig struct {
	JWKSURL string // required: the OP's jwks_uri
	// RefetchInterval is the minimum time between the starts of two JWKS
	// fetches; zero means DefaultRefetchInterval (5s).
	RefetchInterval time.Duration
	// RefetchWait is how long a token that no cached key verifies (a
	// rotated key, or a made-up kid) may wait for the next allowed fetch
	// to start; the fetch itself is bounded by the request's context (and
	// 10s). A token whose next allowed fetch starts later, or after its
	// context's deadline, fails at once. Zero means DefaultRefetchWait
	// (5s). A wait shorter than RefetchInterval can miss a rotation.
	RefetchWait time.Duration
	// MaxWaiters bounds the tokens waiting for a fetch at once; beyond it a
	// token fails at once (unknown kid) and Overflow counts it. Zero means
	// DefaultMaxWaiters (64).
	MaxWaiters int
	// Overflow, if set, counts the tokens refused because MaxWaiters were
	// already waiting.
	Overflow prometheus.Counter
	// HTTPClient fetches the JWKS; nil means a client with a 10s timeout.
	HTTPClient *http.Client
}

// Validate reports every problem in c, joined.
func (c RemoteKeySetConfig) Validate() error {
	var errs []error
	if c.JWKSURL == "" {
		errs = append(errs, errors.New("jwks_url: is required"))
	}
	if c.RefetchInterval < 0 {
		errs = append(errs, errors.New("refetch_interval: must not be negative"))
	}
	if c.RefetchWait < 0 {
		errs = append(errs, errors.New("refetch_wait: must not be negative"))
	}
	if c.MaxWaiters < 0 {
		errs = append(errs, errors.New("max_waiters: must not be negative"))
	}
	return errors.Join(errs...)
}

// RemoteKeySet holds the OP's JWKS: it fetches it on first use, and again
// when no cached key verifies a token (an unknown kid, or a rotated key).
// Fetches are bounded: at most one starts per RefetchInterval, so a flood
// of tokens with made-up kids or bad signatures cannot make the gateway
// hammer the OP. A token that needs a fetch joins the one running, or
// waits (at most RefetchWait, at most MaxWaiters tokens at once) for the
// next allowed one, which all waiting tokens share: a genuine token
// signed with a freshly rotated key verifies even while a flood has just
// spent the refetch. It serves logout tokens (KeySet, with the JWS parsed
// once by the Verifier) and ID tokens (go-oidc's oidc.KeySet).
type RemoteKeySet struct {
	url        string
	client     *http.Client
	interval   time.Duration
	wait       time.Duration
	maxWaiters int
	overflow   prometheus.Counter

	mu      sync.Mutex
	keys    []jose.JSONWebKey // the last JWKS fetched
	next    *fetchCall        // the fetch scheduled or running, if any
	last    time.Time         // when the last fetch started
	waiters int
}

// fetchCall is one JWKS fetch, shared by every token waiting for it.
type fetchCall struct {
	at      time.Time     // when it starts
	running bool          // it started (tokens that arrive now may predate its answer)
	done    chan struct{} // closed when keys and err are set
	keys    []jose.JSONWebKey
	err     error
}

// NewRemoteKeySet returns a RemoteKeySet for cfg.JWKSURL. It fetches
// nothing until the first token.
func NewRemoteKeySet(cfg RemoteKeySetConfig) (*RemoteKeySet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	return &RemoteKeySet{
		url:        cfg.JWKSURL,
		client:     client,
		interval:   cmp.Or(cfg.RefetchInterval, DefaultRefetchInterval),
		wait:       cmp.Or(cfg.RefetchWait, DefaultRefetchWait),
		maxWaiters: cmp.Or(cfg.MaxWaiters, DefaultMaxWaiters),
		overflow:   cfg.Overflow,
	}, nil
}

// VerifySignature implements go-oidc's oidc.KeySet (ID tokens: go-oidc
// has already pinned the algorithm).
func (ks *RemoteKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, asymmetricJOSE)
	if err != nil {
		return nil, fmt.Errorf("parse jws: %w", err)
	}
	if err := ks.VerifyJWS(ctx, jws); err != nil {
		return nil, err
	}
	return jws.UnsafePayloadWithoutVerification(), nil
}

// VerifyJWS implements KeySet: the cached keys first, then, if none
// verifies, the keys of a fetch that started after the token arrived: one
// that starts within RefetchWait (and ctx's deadline), waited for within
// ctx.
func (ks *RemoteKeySet) VerifyJWS(ctx context.Context, jws *jose.JSONWebSignature) error {
	kid := jws.Signatures[0].Header.KeyID
	if verifyWith(jws, kid, ks.cached()) {
		return nil
	}
	ferr := ks.refetch(ctx, time.Now().Add(ks.wait), func(keys []jose.JSONWebKey) bool { return verifyWith(jws, kid, keys) })
	if ferr == nil {
		return nil
	}
	err := errBadSignature
	if !hasKID(ks.cached(), kid) {
		err = errUnknownKID
	}
	if errors.Is(ferr, errNotVerified) {
		return err
	}
	return fmt.Errorf("%w (refetch: %w)", err, ferr)
}

// Prefetch fetches the keys now, so that the first token verified finds
// them cached rather than waiting for a fetch (a warm-up once discovery
// named the JWKS URL). It is a fetch like any other: it joins one under
// way, and counts for RefetchInterval. It fails when the fetch fails.
func (ks *RemoteKeySet) Prefetch(ctx context.Context) error {
	return ks.refetch(ctx, time.Now().Add(ks.wait), func([]jose.JSONWebKey) bool { return true })
}

func (ks *RemoteKeySet) cached() []jose.JSONWebKey {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.keys
}

var errNotVerified = errors.New("no fetched key verifies")

// refetch waits for fetches until one whose keys ok accepts, or one that
// started after the call, or until ctx ends. It joins the fetch running,
// if any (its keys may predate a rotation: then it waits for the next),
// or the one scheduled, or schedules one at the next allowed time; it
// fails at once when that time is past startBy or ctx's deadline, or
// MaxWaiters tokens are already waiting.
func (ks *RemoteKeySet) refetch(ctx context.Context, startBy time.Time, ok func([]jose.JSONWebKey) bool) error {
	if d, has := ctx.Deadline(); has && d.Before(startBy) {
		startBy = d
	}
	for {
		call, fresh, err := ks.join(startBy)
		if err != nil {
			return err
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			ks.leave()
			return ctx.Err()
		}
		ks.leave()
		switch {
		case call.err == nil && ok(call.keys):
			return nil
		case fresh && call.err != nil:
			return call.err
		case fresh:
			return errNotVerified
		}
	}
}

// join returns the fetch to wait for and whether it starts after now,
// counting the caller as a waiter.
func (ks *RemoteKeySet) join(startBy time.Time) (call *fetchCall, fresh bool, err error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.waiters >= ks.maxWaiters {
		if ks.overflow != nil {
			ks.overflow.Inc()
		}
		return nil, false, errTooManyWaiters
	}
	if ks.next == nil {
		at := time.Now()
		if !ks.last.IsZero() {
			at = later(at, ks.last.Add(ks.interval))
		}
		if at.After(startBy) {
			return nil, false, errRefetchLimited // do not wait for nothing
		}
		ks.next = &fetchCall{at: at, done: make(chan struct{})}
		go ks.run(ks.next)
	} else if !ks.next.running && ks.next.at.After(startBy) {
		return nil, false, errRefetchLimited
	}
	ks.waiters++
	return ks.next, !ks.next.running, nil
}

func (ks *RemoteKeySet) leave() {
	ks.mu.Lock()
	ks.waiters--
	ks.mu.Unlock()
}

// run makes the fetch call at its time, for everyone waiting for it. It
// is not canceled with any caller (others may be waiting); fetchTimeout
// bounds it.
func (ks *RemoteKeySet) run(call *fetchCall) {
	if d := time.Until(call.at); d > 0 {
		t := time.NewTimer(d)
		<-t.C
	}
	ks.mu.Lock()
	call.running = true
	ks.last = time.Now()
	ks.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	keys, err := ks.get(ctx)

	ks.mu.Lock()
	if err == nil {
		ks.keys = keys
	}
	call.keys, call.err = keys, err
	ks.next = nil
	ks.mu.Unlock()
	close(call.done)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// verifyWith reports whether a key of keys with the token's kid (any key
// when the token has none) verifies the signature.
func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) bool {
	for i := range keys {
		k := &keys[i]
		if (kid != "" && k.KeyID != kid) || k.Use == "enc" {
			continue
		}
		if _, err := jws.Verify(k); err == nil {
			return true
		}
	}
	return false
}

// hasKID reports whether kid is in keys; a token without kid counts as
// known once any key was fetched.
func hasKID(keys []jose.JSONWebKey, kid string) bool {
	if kid == "" {
		return len(keys) > 0
	}
	for _, k := range keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

func (ks *RemoteKeySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	return set.Keys, nil
}
