package logout_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and
// must answer either a token or a *ValidationError.
func FuzzVerify(f *testing.F) {
	op := testop.New(f, testop.Config{})
	v := newVerifier(f, op, func(c *logout.VerifierConfig) { c.SigningAlgs = []string{"RS256", "HS256"} })
	valid := lt(nil, testop.SignOpts{})(op)
	for _, seed := range []string{
		valid,
		valid[:len(valid)/2],
		lt(nil, testop.SignOpts{Alg: "HS256", Typ: "logout+jwt"})(op),
		lt(nil, testop.SignOpts{Alg: "none"})(op),
		lt(nil, testop.SignOpts{Alg: "ES256"})(op),
		lt(set("events", []int{1}, "nonce", nil), testop.SignOpts{KID: "zz"})(op),
		"garbage",
		"",
		"a.b.c",
		"a.b.c.d.e",
		"eyJhbGciOiJub25lIn0.e30.",
		strings.Repeat(".", 10),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(context.Background(), raw)
		var ve *logout.ValidationError
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("Verify error %T %v, want *ValidationError", err, err)
		}
		if err == nil && tok == nil {
			t.Fatal("Verify returned neither token nor error")
		}
		if err != nil && (ve.Reason == "" || ve.Description == "") {
			t.Fatalf("ValidationError %+v without reason or description", ve)
		}
	})
}
