package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"
)

// roundTripFunc is an in-memory http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRefreshMargin(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		leeway         time.Duration
		issued, expiry time.Time
		want           time.Duration
	}{
		{name: "long token", issued: t0, expiry: t0.Add(time.Hour), want: 30 * time.Second},
		{name: "short token", issued: t0, expiry: t0.Add(20 * time.Second), want: 5 * time.Second},
		{name: "issue time unknown", expiry: t0.Add(20 * time.Second), want: 30 * time.Second},
		{name: "configured", leeway: 2 * time.Minute, issued: t0, expiry: t0.Add(time.Hour), want: 2 * time.Minute},
		{name: "configured, short token", leeway: 2 * time.Minute, issued: t0, expiry: t0.Add(4 * time.Minute), want: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRefresher(RefresherConfig{Leeway: tt.leeway}, nil, nil)
			if got := r.margin(tt.issued, tt.expiry); got != tt.want {
				t.Errorf("margin = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRefreshMarginShortTokens: with a 20 s access token, calls once a
// second make exactly one grant per token, a quarter of its lifetime
// before it expires. With the fixed 30 s margin every call refreshed
// (a 20 s token is always within 30 s of its expiry).
func TestRefreshMarginShortTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var grants atomic.Int32
		token := func(w http.ResponseWriter, r *http.Request) {
			n := grants.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprint("at-", n), "token_type": "Bearer", "expires_in": 20})
		}
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			rec := httptest.NewRecorder()
			token(rec, r)
			return rec.Result(), nil
		})}
		oc := &oauth2.Config{ClientID: "demo", ClientSecret: "secret",
			Endpoint: oauth2.Endpoint{TokenURL: "http://idp.test/token", AuthStyle: oauth2.AuthStyleInHeader}}
		s := expiredSession()
		r := NewRefresher(RefresherConfig{OAuth2: oc, HTTPClient: client}, newSessions(t, s.Clone()), nil)
		for range 60 {
			if _, err := r.AccessToken(t.Context(), s); err != nil {
				t.Fatalf("AccessToken() error = %v", err)
			}
			time.Sleep(time.Second) // the bubble's clock
		}
		// Grants at 0 s (expired), then 15 s, 30 s and 45 s: each token
		// refreshed 5 s (a quarter of 20 s) before its expiry.
		if got := grants.Load(); got != 4 {
			t.Errorf("grants in 60 s of calls = %d, want 4 (one per token)", got)
		}
	})
}
