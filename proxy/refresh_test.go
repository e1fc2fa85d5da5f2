package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

func expiredSession() *session.Session {
	s := validSession()
	s.TokenExpiry = time.Now().Add(-time.Minute)
	return s
}

func TestRefresherValidTokenNoRefresh(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		expiry time.Time
		want   bool // refreshed
	}{
		{name: "beyond leeway", expiry: now.Add(31 * time.Second), want: false},
		{name: "no expiry", expiry: time.Time{}, want: false},
		{name: "within leeway", expiry: now.Add(29 * time.Second), want: true},
		{name: "expired", expiry: now.Add(-time.Second), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTokenEndpoint(t)
			s := validSession()
			s.TokenExpiry = tt.expiry
			r := NewRefresher(RefresherConfig{OAuth2: te.oauth2Config(), HTTPClient: te.srv.Client(), Now: func() time.Time { return now }}, newSessions(t, s.Clone()), nil)
			got, err := r.AccessToken(t.Context(), s)
			if err != nil {
				t.Fatalf("AccessToken() error = %v", err)
			}
			refreshed := te.hits.Load() == 1
			if refreshed != tt.want {
				t.Errorf("refreshed = %v, want %v", refreshed, tt.want)
			}
			if want := map[bool]string{false: "at-1", true: "at-new"}[tt.want]; got != want {
				t.Errorf("AccessToken() = %q, want %q", got, want)
			}
		})
	}
}

func TestRefresherHotPathAllocs(t *testing.T) {
	s := validSession()
	r := NewRefresher(RefresherConfig{}, newSessions(t, s.Clone()), nil)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.AccessToken(ctx, s); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("allocations per valid-token call = %v, want 0", allocs)
	}
}

func TestRefresherSavesTokens(t *testing.T) {
	tests := []struct {
		name        string
		response    map[string]any
		wantRefresh string
	}{
		{
			name:        "refresh token kept",
			response:    map[string]any{"access_token": "at-new", "token_type": "Bearer", "expires_in": 3600},
			wantRefresh: "rt-1",
		},
		{
			name:        "refresh token rotated",
			response:    map[string]any{"access_token": "at-new", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-2"},
			wantRefresh: "rt-2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTokenEndpoint(t)
			var sentRefresh string
			te.handle = func(w http.ResponseWriter, rt string) {
				sentRefresh = rt
				writeTokenJSON(w, http.StatusOK, tt.response)
			}
			s := expiredSession()
			st := newSessions(t, s.Clone())
			got, err := te.refresher(st).AccessToken(t.Context(), s)
			if err != nil || got != "at-new" {
				t.Fatalf("AccessToken() = %q, %v; want at-new", got, err)
			}
			if sentRefresh != "rt-1" {
				t.Errorf("refresh_token sent = %q, want rt-1", sentRefresh)
			}
			_, saved := st.saved(s.ID)
			if saved == nil || saved.AccessToken != "at-new" || saved.RefreshToken != tt.wantRefresh || !saved.TokenExpiry.After(time.Now()) {
				t.Fatalf("saved session = %+v, want at-new, %s, a future expiry", saved, tt.wantRefresh)
			}
			if s.AccessToken != "at-new" || s.RefreshToken != tt.wantRefresh || !s.TokenExpiry.Equal(saved.TokenExpiry) {
				t.Errorf("caller's session = %+v, want it updated in place", s)
			}
		})
	}
}

func TestRefresherFailures(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      map[string]any
		storeErr  error
		wantEnded bool
	}{
		{name: "invalid_grant", status: http.StatusBadRequest, body: map[string]any{"error": "invalid_grant"}, wantEnded: true},
		{name: "unauthorized client", status: http.StatusUnauthorized, body: map[string]any{"error": "invalid_client"}, wantEnded: true},
		{name: "idp 503 is transient", status: http.StatusServiceUnavailable, body: map[string]any{"error": "temporarily_unavailable"}, wantEnded: false},
		{name: "session gone on save", status: http.StatusOK, body: map[string]any{"access_token": "at-new", "expires_in": 60}, storeErr: session.ErrNotFound, wantEnded: true},
		{name: "store down is transient", status: http.StatusOK, body: map[string]any{"access_token": "at-new", "expires_in": 60}, storeErr: errBoom, wantEnded: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTokenEndpoint(t)
			te.handle = func(w http.ResponseWriter, _ string) { writeTokenJSON(w, tt.status, tt.body) }
			st := newSessions(t, expiredSession())
			st.failReplace(tt.storeErr)
			_, err := te.refresher(st).AccessToken(t.Context(), expiredSession())
			if err == nil {
				t.Fatal("AccessToken() error = nil, want an error")
			}
			if got := errors.Is(err, ErrSessionEnded); got != tt.wantEnded {
				t.Errorf("errors.Is(%v, ErrSessionEnded) = %v, want %v", err, got, tt.wantEnded)
			}
			wantCalls := 0
			if tt.wantEnded && tt.storeErr == nil {
				wantCalls = 1 // a session already gone is not ended again
			}
			if got := st.calls(); len(got) != wantCalls {
				t.Errorf("End calls = %v, want %d", got, wantCalls)
			}
		})
	}
}

func TestRefresherEndedSessionRemembered(t *testing.T) {
	te := newTokenEndpoint(t)
	te.handle = func(w http.ResponseWriter, _ string) {
		writeTokenJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
	}
	r := te.refresher(newSessions(t, expiredSession()))
	for range 3 {
		if _, err := r.AccessToken(t.Context(), expiredSession()); !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("AccessToken() error = %v, want ErrSessionEnded", err)
		}
	}
	if got := te.hits.Load(); got != 1 {
		t.Errorf("token endpoint hits = %d, want 1", got)
	}
}

// A request that read the session before a refresh was saved must not
// present the rotated-away refresh token again.
func TestRefresherStaleCopyReusesRefresh(t *testing.T) {
	te := newTokenEndpoint(t)
	te.handle = func(w http.ResponseWriter, rt string) {
		if rt != "rt-1" {
			writeTokenJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
			return
		}
		writeTokenJSON(w, http.StatusOK, map[string]any{"access_token": "at-new", "expires_in": 3600, "refresh_token": "rt-2"})
	}
	en := newSessions(t, expiredSession())
	r := te.refresher(en)
	first, stale := expiredSession(), expiredSession()
	if _, err := r.AccessToken(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	got, err := r.AccessToken(t.Context(), stale)
	if err != nil || got != "at-new" || stale.RefreshToken != "rt-2" {
		t.Errorf("stale copy: AccessToken() = %q, %v, refresh token %q; want at-new, rt-2", got, err, stale.RefreshToken)
	}
	if hits := te.hits.Load(); hits != 1 || len(en.calls()) != 0 {
		t.Errorf("token endpoint hits = %d, End calls = %v; want 1, none", hits, en.calls())
	}
}

func TestRefresherConcurrentOnce(t *testing.T) {
	te := newTokenEndpoint(t)
	st := newSessions(t, expiredSession())
	r := te.refresher(st)
	const n = 20
	errs := make([]error, n)
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = r.AccessToken(t.Context(), expiredSession()) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != "at-new" {
			t.Errorf("caller %d: AccessToken() = %q, %v; want at-new", i, got[i], errs[i])
		}
	}
	if hits := te.hits.Load(); hits != 1 {
		t.Errorf("token endpoint hits = %d, want 1", hits)
	}
	if updates, _ := st.saved("s1"); updates != 1 {
		t.Errorf("store updates = %d, want 1", updates)
	}
}

// The caller that started a refresh going away does not fail the refresh
// for the others, nor stop it from being saved.
func TestRefresherFirstCallerCanceled(t *testing.T) {
	te := newTokenEndpoint(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	te.handle = func(w http.ResponseWriter, _ string) {
		close(arrived)
		<-release
		writeTokenJSON(w, http.StatusOK, map[string]any{"access_token": "at-new", "expires_in": 3600})
	}
	st := newSessions(t, expiredSession())
	r := te.refresher(st)

	ctx1, cancel1 := context.WithCancel(t.Context())
	err1 := make(chan error, 1)
	go func() {
		_, err := r.AccessToken(ctx1, expiredSession())
		err1 <- err
	}()
	<-arrived
	type result struct {
		tok string
		err error
	}
	second := make(chan result, 1)
	go func() {
		tok, err := r.AccessToken(t.Context(), expiredSession())
		second <- result{tok, err}
	}()
	cancel1()
	if err := <-err1; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled caller: error = %v, want context.Canceled", err)
	}
	close(release)
	if res := <-second; res.err != nil || res.tok != "at-new" {
		t.Errorf("other caller: AccessToken() = %q, %v; want at-new", res.tok, res.err)
	}
	if updates, _ := st.saved("s1"); updates != 1 {
		t.Errorf("store updates = %d, want 1", updates)
	}
	if hits := te.hits.Load(); hits != 1 {
		t.Errorf("token endpoint hits = %d, want 1", hits)
	}
}

func TestRefresherUnreachableIdPKeepsSession(t *testing.T) {
	te := newTokenEndpoint(t)
	te.srv.Close() // unreachable
	en := newSessions(t, expiredSession())
	_, err := te.refresher(en).AccessToken(t.Context(), expiredSession())
	if err == nil || errors.Is(err, ErrSessionEnded) {
		t.Fatalf("AccessToken() error = %v, want a transient error", err)
	}
	if got := en.calls(); len(got) != 0 {
		t.Errorf("End calls = %v, want none: an unreachable IdP does not end sessions", got)
	}
}

// A refresh that failed for a transient reason releases its claim: the
// next request tries again at once instead of waiting for it to lapse.
func TestRefresherTransientFailureReleasesClaim(t *testing.T) {
	te := newTokenEndpoint(t)
	te.handle = func(w http.ResponseWriter, _ string) {
		writeTokenJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"})
	}
	ss := newSessions(t, expiredSession())
	r := NewRefresher(RefresherConfig{OAuth2: te.oauth2Config(), HTTPClient: te.srv.Client(), Timeout: time.Minute}, ss, nil)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := r.AccessToken(ctx, expiredSession())
		cancel()
		if err == nil || errors.Is(err, ErrSessionEnded) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: AccessToken() error = %v, want the IdP's transient error", i, err)
		}
	}
	if hits := te.hits.Load(); hits != 2 {
		t.Errorf("token endpoint hits = %d, want 2", hits)
	}
}

// Another replica holds the refresh claim: the refresher waits for the
// tokens it saves and makes no grant of its own.
func TestRefresherWaitsForOtherReplica(t *testing.T) {
	te := newTokenEndpoint(t)
	s := expiredSession()
	ss := newSessions(t, s.Clone())
	if ok, err := ss.ClaimRefresh(t.Context(), s.ID, time.Minute); err != nil || !ok {
		t.Fatalf("ClaimRefresh: %v, %v", ok, err)
	}
	refused := make(chan struct{}, 100)
	go func() {
		<-refused // the refresher found the claim taken: the other replica saves its tokens
		ss.ReplaceTokens(context.Background(), s.ID, s.RefreshToken,
			session.Tokens{AccessToken: "at-other", RefreshToken: "rt-other", Expiry: time.Now().Add(time.Hour)})
	}()
	got, err := te.refresher(claimWatch{ss, refused}).AccessToken(t.Context(), s)
	if err != nil || got != "at-other" || s.RefreshToken != "rt-other" {
		t.Errorf("AccessToken() = %q, %v, refresh token %q; want at-other, rt-other", got, err, s.RefreshToken)
	}
	if hits := te.hits.Load(); hits != 0 {
		t.Errorf("token endpoint hits = %d, want 0", hits)
	}
}

// claimWatch signals every refused claim.
type claimWatch struct {
	*sessions
	refused chan<- struct{}
}

func (c claimWatch) ClaimRefresh(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	ok, err := c.sessions.ClaimRefresh(ctx, id, ttl)
	if err == nil && !ok {
		select {
		case c.refused <- struct{}{}:
		default:
		}
	}
	return ok, err
}

// A refresh that succeeded releases its claim too: with an IdP that does
// not rotate refresh tokens, the claim would otherwise still cover the
// (unchanged) refresh token, and the next refresh — of tokens that are
// due again — would wait for it to lapse.
func TestRefresherSuccessReleasesClaim(t *testing.T) {
	te := newTokenEndpoint(t) // answers without a new refresh token
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	s := expiredSession()
	ss := newSessions(t, s.Clone())
	r := NewRefresher(RefresherConfig{OAuth2: te.oauth2Config(), HTTPClient: te.srv.Client(), Timeout: time.Minute, Now: now}, ss, nil)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		cur, err := ss.Get(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.AccessToken(ctx, cur)
		cancel()
		if err != nil {
			t.Fatalf("refresh %d: AccessToken() error = %v, want nil", i, err)
		}
		mu.Lock()
		clock = clock.Add(2 * time.Hour) // the new tokens are due again
		mu.Unlock()
	}
	if hits := te.hits.Load(); hits != 2 {
		t.Errorf("token endpoint hits = %d, want 2", hits)
	}
}
