package logout_test

import (
	"context"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
)

// TestVerifyIgnoresClaimsItDoesNotUnderstand: §2.4 says claims a receiver
// does not understand MUST be ignored. A verifier whose result depends on
// another library's ID-token checks (which run after the signature step
// and decode claims a logout token does not define) rejects these.
func TestVerifyIgnoresClaimsItDoesNotUnderstand(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	tests := []struct {
		name   string
		mutate func(map[string]any)
	}{
		{"at_hash a number", set("at_hash", 5)},
		{"nonce-like c_hash object", set("c_hash", map[string]any{"x": 1})},
		{"_claim_names without sources", set("_claim_names", map[string]any{"groups": "src1"})},
		{"nbf a string", set("nbf", "soon")},
		{"auth_time a string", set("auth_time", "yesterday")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), lt(tt.mutate, testop.SignOpts{})(op))
			if got := reason(err); got != "" {
				t.Errorf("Verify reason = %q, want accepted (err: %v)", got, err)
			}
		})
	}
}

// TestVerifyAllocations bounds the work of one verification: the token is
// parsed once, its signature checked once and its claims decoded once.
// Parsing it again per check (a header peek, a hand-read JOSE header,
// go-oidc's parse, the key set's parse) costs about 270 allocations; parsed once, about 150.
func TestVerifyAllocations(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, func(c *logout.VerifierConfig) { c.Replay = nopReplay{} })
	raw := lt(nil, testop.SignOpts{})(op)
	ctx := context.Background()
	if _, err := v.Verify(ctx, raw); err != nil { // warm the JWKS cache
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
	})
	const limit = 180
	if allocs > limit {
		t.Errorf("Verify allocates %.0f times per token, want at most %d", allocs, limit)
	}
}

// nopReplay accepts every jti, so one token can be verified repeatedly.
type nopReplay struct{}

func (nopReplay) Seen(context.Context, string, time.Duration) (bool, error) { return false, nil }

func (nopReplay) Forget(context.Context, string) error { return nil }
