package bff

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// TestFrontchannelSIDOnly: Microsoft Entra ID calls the front-channel URL
// with sid and no iss. Without frontchannel_sid_only that is a 400 and
// nothing ends; with it, the app that the request path selects takes its
// own issuer as iss: with two apps of two issuers sharing a sid value,
// each path ends only its app's session of its issuer.
func TestFrontchannelSIDOnly(t *testing.T) {
	for _, sidOnly := range []bool{false, true} {
		other := testop.New(t, testop.Config{ClientID: "other-client"})
		h := newHarness(t, harnessOpts{
			mutate: func(a *AppConfig) { a.FrontchannelSIDOnly = sidOnly },
			more: func(demo AppConfig) []AppConfig {
				o := demo
				o.Name, o.PathPrefix, o.PostLogoutRedirect, o.APIs = "other", "/other/", "", nil
				o.Issuer, o.ClientID, o.ClientSecret = other.URL, other.ClientID(), other.ClientSecret()
				return []AppConfig{o}
			},
		})
		ctx := context.Background()
		for _, s := range []struct{ id, app, iss string }{
			{"demo-own", "demo", h.op.URL},
			{"other-own", "other", other.URL},
			{"other-foreign", "other", h.op.URL}, // the other app, but demo's issuer
		} {
			if err := h.mgr.Create(ctx, &session.Session{ID: s.id, App: s.app, Issuer: s.iss, Subject: "alice", SID: "entra-sid"}); err != nil {
				t.Fatal(err)
			}
		}
		live := func(id string) bool {
			_, err := h.mgr.Get(ctx, id)
			if err != nil && !errors.Is(err, session.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		resp := h.get(h.browser(), "/other/bff/frontchannel-logout?sid=entra-sid")
		want := map[bool]int{false: http.StatusBadRequest, true: http.StatusOK}[sidOnly]
		if resp.StatusCode != want {
			t.Errorf("sid_only=%v: other: status %d, want %d", sidOnly, resp.StatusCode, want)
		}
		if got := [3]bool{live("demo-own"), live("other-own"), live("other-foreign")}; got != [3]bool{true, !sidOnly, true} {
			t.Errorf("sid_only=%v: live demo-own, other-own, other-foreign = %v after /other/", sidOnly, got)
		}
		if resp := h.get(h.browser(), "/bff/frontchannel-logout?sid=entra-sid"); resp.StatusCode != want {
			t.Errorf("sid_only=%v: demo: status %d, want %d", sidOnly, resp.StatusCode, want)
		}
		if got := live("demo-own"); got == sidOnly {
			t.Errorf("sid_only=%v: demo-own live = %v after /", sidOnly, got)
		}
		if !live("other-foreign") {
			t.Errorf("sid_only=%v: a session of another issuer ended", sidOnly)
		}
	}
}
