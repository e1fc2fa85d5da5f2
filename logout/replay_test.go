package logout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
)

// recordingCache is a ReplayCache fake that records its calls.
type recordingCache struct {
	keys []string
	ttls []time.Duration
	err  error
}

func (c *recordingCache) Seen(_ context.Context, key string, ttl time.Duration) (bool, error) {
	c.keys, c.ttls = append(c.keys, key), append(c.ttls, ttl)
	return false, c.err
}

func (c *recordingCache) Forget(context.Context, string) error { return nil }

func TestReplay(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	ctx := context.Background()
	raw := lt(nil, testop.SignOpts{})(op)
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	if _, err := v.Verify(ctx, raw); reason(err) != "replay" {
		t.Errorf("second Verify: reason = %q, want replay", reason(err))
	}
}

func TestRejectedTokenDoesNotPoisonJTI(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, lt(set("jti", "j1", "aud", "other"), testop.SignOpts{})(op)); reason(err) != "aud" {
		t.Fatalf("bad aud: reason = %q, want aud", reason(err))
	}
	if _, err := v.Verify(ctx, lt(set("jti", "j1"), testop.SignOpts{})(op)); err != nil {
		t.Errorf("valid token with the same jti: %v, want accepted", err)
	}
	if _, err := v.Verify(ctx, lt(set("jti", "j1", "sid", "other"), testop.SignOpts{})(op)); reason(err) != "replay" {
		t.Errorf("third token with jti j1: reason = %q, want replay", reason(err))
	}
}

func TestReplayCacheKeyAndTTL(t *testing.T) {
	op := testop.New(t, testop.Config{})
	rc := &recordingCache{}
	v := newVerifier(t, op, func(c *logout.VerifierConfig) {
		c.Replay, c.MaxTokenAge, c.ClockSkew = rc, 5*time.Minute, 30*time.Second
	})
	if _, err := v.Verify(context.Background(), lt(set("jti", "secret-jti"), testop.SignOpts{})(op)); err != nil {
		t.Fatal(err)
	}
	if len(rc.keys) != 1 || strings.Contains(rc.keys[0], "secret-jti") || strings.Contains(rc.keys[0], op.URL) {
		t.Errorf("replay keys = %q, want one hashed key", rc.keys)
	}
	if rc.ttls[0] < 5*time.Minute+30*time.Second {
		t.Errorf("replay ttl = %v, want at least MaxTokenAge+ClockSkew", rc.ttls[0])
	}
}

func TestReplayCacheFailure(t *testing.T) {
	op := testop.New(t, testop.Config{})
	down := errors.New("redis down")
	v := newVerifier(t, op, func(c *logout.VerifierConfig) { c.Replay = &recordingCache{err: down} })
	_, err := v.Verify(context.Background(), lt(nil, testop.SignOpts{})(op))
	var rce *logout.ReplayCacheError
	var ve *logout.ValidationError
	if !errors.As(err, &rce) || errors.As(err, &ve) || !errors.Is(err, down) {
		t.Errorf("Verify error = %v, want a *ReplayCacheError wrapping the store's error", err)
	}
}

func TestMemoryReplayCache(t *testing.T) {
	c := logout.NewMemoryReplayCache()
	ctx := context.Background()
	for i, want := range []bool{false, true, true} {
		if got, err := c.Seen(ctx, "k", time.Minute); got != want || err != nil {
			t.Errorf("Seen #%d = %v, %v; want %v, nil", i, got, err, want)
		}
	}
	if got, _ := c.Seen(ctx, "other", time.Minute); got {
		t.Error("Seen(other) = true, want false")
	}
	if err := c.Forget(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Seen(ctx, "k", time.Minute); got {
		t.Error("Seen after Forget = true, want false")
	}
}
