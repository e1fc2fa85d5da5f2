package logout_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
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

// TestRemoteKeySetJoinsConcurrentFetches: tokens arriving together on a
// cold cache cause one JWKS fetch, and all verify.
func TestRemoteKeySetJoinsConcurrentFetches(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	toks := make([]string, 20)
	for i := range toks {
		toks[i] = lt(nil, testop.SignOpts{})(op)
	}
	errs := make(chan error, len(toks))
	for _, tok := range toks {
		go func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	for range toks {
		if err := <-errs; err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	if got := op.JWKSFetches(); got != 1 {
		t.Errorf("JWKSFetches() = %d, want 1", got)
	}
}

// TestRemoteKeySetIDTokens: the key set also serves go-oidc for ID
// tokens (oidc.KeySet), returning the verified payload.
func TestRemoteKeySetIDTokens(t *testing.T) {
	op := testop.New(t, testop.Config{})
	ks, err := logout.NewRemoteKeySet(logout.RemoteKeySetConfig{JWKSURL: op.JWKSURL()})
	if err != nil {
		t.Fatal(err)
	}
	var _ oidc.KeySet = ks
	payload, err := ks.VerifySignature(context.Background(), op.Sign(map[string]any{"sub": "alice"}, testop.SignOpts{}))
	if err != nil || string(payload) != `{"sub":"alice"}` {
		t.Errorf("VerifySignature = %q, %v; want the payload", payload, err)
	}
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := ks.VerifySignature(context.Background(), op.Sign(map[string]any{"sub": "alice"}, testop.SignOpts{Key: stranger})); err == nil {
		t.Error("VerifySignature accepted a token signed by an unpublished key")
	}
}
