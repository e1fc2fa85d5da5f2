package logout_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"slices"
	"testing"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
)

// TestRevokeClientAuth: Revoke authenticates with the target's method;
// without one it keeps client_secret_basic. Fails before (for
// client_secret_post and private_key_jwt): always Basic, 401.
func TestRevokeClientAuth(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := clientauth.NewKey(key, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"", testop.SecretBasic, testop.SecretPost, testop.PrivateKeyJWT} {
		t.Run("method "+m, func(t *testing.T) {
			op := testop.New(t, testop.Config{})
			op.SetClientAuth(op.ClientID(), m, key.Public())
			target := logout.RevocationTarget{App: app, Endpoint: op.URL + "/revoke", ClientID: op.ClientID(), ClientSecret: op.ClientSecret()}
			want := testop.SecretBasic
			if m != "" {
				target.Auth = &clientauth.Client{ID: op.ClientID(), Secret: op.ClientSecret(), Method: clientauth.Method(m), Key: k, Audience: op.URL}
				want = m
			}
			r, _ := newRevoker(t, logout.RevokerConfig{})
			if err := r.Revoke(context.Background(), target, "rt-1"); err != nil {
				t.Fatalf("Revoke: %v (failures %q)", err, op.ClientAuthFailures())
			}
			if got := op.ClientAuthMethods(); !slices.Equal(got, []string{"revoke " + want}) || !slices.Equal(op.Revoked(), []string{"rt-1"}) {
				t.Errorf("authentications %q, revoked %q; want [revoke %s], [rt-1]", got, op.Revoked(), want)
			}
		})
	}
}
