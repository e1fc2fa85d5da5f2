package logout_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

func TestUnknownKIDFloodIsRateLimited(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	ctx := context.Background()
	for i := range 100 {
		_, err := v.Verify(ctx, lt(nil, testop.SignOpts{KID: fmt.Sprintf("kid-%d", i)})(op))
		if got := reason(err); got != "unknown_kid" {
			t.Fatalf("token %d: reason = %q, want unknown_kid (err: %v)", i, got, err)
		}
	}
	if got := op.JWKSFetches(); got > 2 {
		t.Errorf("JWKSFetches() = %d after 100 unknown kids, want at most 2", got)
	}
	// The known kid still works from the cached JWKS, without a fetch.
	before := op.JWKSFetches()
	if _, err := v.Verify(ctx, lt(nil, testop.SignOpts{})(op)); err != nil {
		t.Fatalf("valid token after the flood: %v", err)
	}
	if got := op.JWKSFetches(); got != before {
		t.Errorf("JWKSFetches() = %d after a known kid, want %d", got, before)
	}
}

func TestUnknownKIDAfterWarmCacheDoesNotFetch(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, lt(nil, testop.SignOpts{})(op)); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		_, _ = v.Verify(ctx, lt(nil, testop.SignOpts{KID: fmt.Sprintf("kid-%d", i)})(op))
	}
	if got := op.JWKSFetches(); got != 1 {
		t.Errorf("JWKSFetches() = %d, want 1", got)
	}
}

func TestBadSignatureFloodIsRateLimited(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 50 { // kid rs1 is known, so go-oidc would refetch each time
		_, err := v.Verify(ctx, lt(nil, testop.SignOpts{Key: stranger})(op))
		if got := reason(err); got != "signature" {
			t.Fatalf("token %d: reason = %q, want signature (err: %v)", i, got, err)
		}
	}
	if got := op.JWKSFetches(); got > 2 {
		t.Errorf("JWKSFetches() = %d after 50 bad signatures, want at most 2", got)
	}
}
