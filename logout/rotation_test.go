package logout_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
)

// jwksServer is an in-memory jwks_uri (an http.RoundTripper), so that the
// key set's fetches run inside a synctest bubble. It records the (bubble)
// time of every fetch, and its keys can be rotated.
type jwksServer struct {
	delay   time.Duration // how long each answer takes
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetches []time.Time
}

func (s *jwksServer) RoundTrip(r *http.Request) (*http.Response, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches = append(s.fetches, time.Now())
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: s.keys})
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// rotate publishes key under kid, alone: the old key is retired.
func (s *jwksServer) rotate(kid string, key *rsa.PrivateKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"}}
}

func (s *jwksServer) fetchTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.fetches...)
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyRotationDuringUnknownKIDFlood: while anonymous clients send five
// tokens a second with made-up kids, the OP rotates its key twice; a
// genuine logout token and a genuine ID token (the login callback's path:
// go-oidc on the same key set) signed with the new keys both verify, and
// the JWKS is still fetched at most once per refetch interval.
func TestKeyRotationDuringUnknownKIDFlood(t *testing.T) {
	op := testop.New(t, testop.Config{})
	first, second, third := rsaKey(t), rsaKey(t), rsaKey(t)
	const interval = 5 * time.Second
	synctest.Test(t, func(t *testing.T) {
		jwks := &jwksServer{}
		jwks.rotate("k1", first)
		ks, err := logout.NewRemoteKeySet(logout.RemoteKeySetConfig{
			JWKSURL: "https://op.test/jwks", RefetchInterval: interval, HTTPClient: &http.Client{Transport: jwks},
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := logout.NewVerifier(logout.VerifierConfig{Issuer: op.URL, ClientID: op.ClientID(), KeySet: ks, Replay: nopReplay{}})
		if err != nil {
			t.Fatal(err)
		}
		ids := oidc.NewVerifier(op.URL, ks, &oidc.Config{ClientID: op.ClientID()})
		ctx := t.Context()
		start := time.Now()

		// Start-up: the first token fetches the JWKS.
		if _, err := v.Verify(ctx, op.Sign(op.LogoutToken(nil), testop.SignOpts{Key: first, KID: "k1"})); err != nil {
			t.Fatalf("logout token with the first key: %v", err)
		}

		// The flood: five tokens a second, each with a new kid, each
		// verified on its own goroutine as concurrent requests are.
		stop := make(chan struct{})
		var flood sync.WaitGroup
		flood.Go(func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				junk := op.Sign(op.LogoutToken(nil), testop.SignOpts{Key: first, KID: "junk-" + time.Now().String()})
				flood.Go(func() { _, _ = v.Verify(ctx, junk) })
			}
		})

		// A rotation 3s after start-up, inside the first refetch interval.
		time.Sleep(3 * time.Second)
		jwks.rotate("k2", second)
		if _, err := v.Verify(ctx, op.Sign(op.LogoutToken(nil), testop.SignOpts{Key: second, KID: "k2"})); err != nil {
			t.Errorf("logout token signed with the key rotated at +3s, during the flood: %v (reason %q)", err, reason(err))
		}

		// A rotation at +12s, when the flood has just spent a refetch.
		time.Sleep(time.Until(start.Add(12 * time.Second)))
		jwks.rotate("k3", third)
		now := time.Now()
		idToken := op.Sign(map[string]any{"iss": op.URL, "aud": op.ClientID(), "sub": "alice",
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, testop.SignOpts{Key: third, KID: "k3"})
		if _, err := ids.Verify(ctx, idToken); err != nil {
			t.Errorf("ID token signed with the key rotated at +12s, during the flood: %v", err)
		}
		if _, err := v.Verify(ctx, op.Sign(op.LogoutToken(nil), testop.SignOpts{Key: third, KID: "k3"})); err != nil {
			t.Errorf("logout token signed with the key rotated at +12s, during the flood: %v (reason %q)", err, reason(err))
		}

		time.Sleep(time.Until(start.Add(30 * time.Second)))
		close(stop)
		flood.Wait()
		fetches := jwks.fetchTimes()
		for i := 1; i < len(fetches); i++ {
			if gap := fetches[i].Sub(fetches[i-1]); gap < interval {
				t.Errorf("JWKS fetches %d and %d are %v apart, want at least %v", i-1, i, gap, interval)
			}
		}
		// The last junk tokens may still wait up to RefetchWait after the flood.
		if max := 1 + int((30*time.Second+logout.DefaultRefetchWait)/interval); len(fetches) > max {
			t.Errorf("%d JWKS fetches for a 30s flood, want at most %d", len(fetches), max)
		}
	})
}

// TestKeySetWaitIsBounded: a token no cached key verifies waits for the
// next allowed fetch only within RefetchWait and its context, and beyond
// MaxWaiters waiting tokens one fails at once, counted.
func TestKeySetWaitIsBounded(t *testing.T) {
	op := testop.New(t, testop.Config{})
	key := rsaKey(t)
	synctest.Test(t, func(t *testing.T) {
		jwks := &jwksServer{}
		jwks.rotate("k1", key)
		overflow := prometheus.NewCounter(prometheus.CounterOpts{Name: "overflow"})
		ks, err := logout.NewRemoteKeySet(logout.RemoteKeySetConfig{
			JWKSURL: "https://op.test/jwks", RefetchInterval: 10 * time.Second, RefetchWait: 3 * time.Second,
			MaxWaiters: 2, Overflow: overflow, HTTPClient: &http.Client{Transport: jwks},
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := logout.NewVerifier(logout.VerifierConfig{Issuer: op.URL, ClientID: op.ClientID(), KeySet: ks, Replay: nopReplay{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		junk := func(kid string) string { return op.Sign(op.LogoutToken(nil), testop.SignOpts{Key: key, KID: kid}) }
		if _, err := v.Verify(ctx, junk("k1")); err != nil { // the first fetch, at +0s
			t.Fatal(err)
		}

		// The next fetch is allowed at +10s, past RefetchWait: fail at once.
		start := time.Now()
		if _, err := v.Verify(ctx, junk("x")); reason(err) != logout.ReasonUnknownKID || time.Since(start) != 0 {
			t.Errorf("unknown kid 10s before the next fetch: %v after %v, want unknown_kid at once", err, time.Since(start))
		}

		// At +8s, two tokens wait for the fetch at +10s; a third fails at once.
		time.Sleep(8 * time.Second)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { _, _ = v.Verify(ctx, junk(fmt.Sprint("wait-", i))) })
		}
		synctest.Wait()
		start = time.Now()
		if _, err := v.Verify(ctx, junk("third")); reason(err) != logout.ReasonUnknownKID || time.Since(start) != 0 {
			t.Errorf("third waiting token: %v after %v, want unknown_kid at once", err, time.Since(start))
		}
		if got := testutil.ToFloat64(overflow); got != 1 {
			t.Errorf("overflow = %v, want 1", got)
		}
		wg.Wait()
		if got := len(jwks.fetchTimes()); got != 2 {
			t.Errorf("%d JWKS fetches, want 2", got)
		}

		// The request's context bounds the wait too.
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		time.Sleep(8 * time.Second) // next fetch at +20s, 2s away
		start = time.Now()
		if _, err := v.Verify(rctx, junk("y")); reason(err) != logout.ReasonUnknownKID || time.Since(start) > time.Second {
			t.Errorf("token whose request ends in 1s: %v after %v, want unknown_kid within 1s", err, time.Since(start))
		}
	})
}

// TestKeySetWaitsForARunningFetch: RefetchWait bounds the wait for a fetch
// to start, not the fetch: with a 1ms wait, tokens on a cold cache wait
// for the slow first fetch and verify.
func TestKeySetWaitsForARunningFetch(t *testing.T) {
	op := testop.New(t, testop.Config{})
	key := rsaKey(t)
	synctest.Test(t, func(t *testing.T) {
		jwks := &jwksServer{delay: 2 * time.Second}
		jwks.rotate("k1", key)
		ks, err := logout.NewRemoteKeySet(logout.RemoteKeySetConfig{
			JWKSURL: "https://op.test/jwks", RefetchWait: time.Millisecond, HTTPClient: &http.Client{Transport: jwks},
		})
		if err != nil {
			t.Fatal(err)
		}
		tok := op.Sign(map[string]any{"sub": "alice"}, testop.SignOpts{Key: key, KID: "k1"})
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if _, err := ks.VerifySignature(t.Context(), tok); err != nil {
					t.Errorf("VerifySignature on a cold cache: %v", err)
				}
			})
		}
		wg.Wait()
		time.Sleep(jwks.delay) // let a fetch nobody waits for end in the bubble
		if got := len(jwks.fetchTimes()); got != 1 {
			t.Errorf("%d JWKS fetches, want 1", got)
		}
	})
}
