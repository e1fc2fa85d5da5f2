package bff

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// TestBackchannelEndsEveryAddressedApp: one logout token ends the sessions
// of every app it addresses, whether two [[apps]] share the issuer and
// client_id or trust each other's client as an audience (it used to end
// one app's sessions and be refused as a replay by the other while the IdP
// got 200); a second delivery is a replay.
func TestBackchannelEndsEveryAddressedApp(t *testing.T) {
	tests := []struct {
		name  string
		other func(demo AppConfig) AppConfig
		aud   func(demo AppConfig) []string
	}{
		{
			name:  "same issuer and client_id",
			other: func(demo AppConfig) AppConfig { return demo },
			aud:   func(demo AppConfig) []string { return []string{demo.ClientID} },
		},
		{
			name: "overlapping trusted_audiences",
			other: func(demo AppConfig) AppConfig {
				demo.ClientID, demo.TrustedAudiences = "other-client", []string{demo.ClientID}
				return demo
			},
			aud: func(demo AppConfig) []string { return []string{demo.ClientID, "other-client"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var aud []string
			h := newHarness(t, harnessOpts{
				mutate: func(demo *AppConfig) { demo.TrustedAudiences = []string{"other-client"} },
				more: func(demo AppConfig) []AppConfig {
					aud = tt.aud(demo)
					other := tt.other(demo)
					other.Name, other.PathPrefix, other.PostLogoutRedirect, other.APIs = "other", "/other/", "", nil
					return []AppConfig{other}
				},
			})
			ctx := context.Background()
			for _, app := range []string{"demo", "other"} {
				err := h.mgr.Create(ctx, &session.Session{ID: "s-" + app, App: app, Issuer: h.op.URL, Subject: "alice", SID: "idp-sid"})
				if err != nil {
					t.Fatal(err)
				}
			}
			tok := h.logoutToken(func(m map[string]any) { m["sid"], m["aud"] = "idp-sid", aud }, testop.SignOpts{})
			if resp := h.backchannel(tok); resp.StatusCode != http.StatusOK {
				e, d := errorOf(t, resp)
				t.Fatalf("back-channel = %d %s %s, want 200", resp.StatusCode, e, d)
			}
			for _, app := range []string{"demo", "other"} {
				if _, err := h.mgr.Get(ctx, "s-"+app); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("session of %s after the logout: %v, want ErrNotFound", app, err)
				}
			}
			if resp := h.backchannel(tok); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("second delivery = %d, want 400 (replay)", resp.StatusCode)
			}
		})
	}
}
