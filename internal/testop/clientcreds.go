package testop

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// ClientToken is what a client_credentials grant issued.
type ClientToken struct {
	ClientID string
	Scope    string
	// Resource and Audience are the grant's RFC 8707 resource and
	// audience parameters.
	Resource, Audience string
	Expires            time.Time
}

// clientCredentials is the state of the client_credentials grant; the
// OP's mu guards it.
type clientCredentials struct {
	ttl      time.Duration
	tokens   map[string]ClientToken
	requests []url.Values
	fail     int           // answer every grant with this status (0: off)
	hold     chan struct{} // closed to release held grants (nil: none)
	held     chan struct{} // told of each grant that waits
	count    int
}

// ClientCredentialsCount counts the client_credentials grants answered
// with a token.
func (op *OP) ClientCredentialsCount() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.cc.count
}

// ClientCredentialsRequests returns the form of every client_credentials
// grant, in order, without client secrets or assertions.
func (op *OP) ClientCredentialsRequests() []url.Values {
	op.mu.Lock()
	defer op.mu.Unlock()
	return slices.Clone(op.cc.requests)
}

// ClientTokenInfo returns what the client token tok was issued for, and
// whether it is one this OP issued.
func (op *OP) ClientTokenInfo(tok string) (ClientToken, bool) {
	op.mu.Lock()
	defer op.mu.Unlock()
	ct, ok := op.cc.tokens[tok]
	return ct, ok
}

// SetClientTokenTTL sets the lifetime of the client tokens issued next.
func (op *OP) SetClientTokenTTL(d time.Duration) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.cc.ttl = d
}

// FailClientCredentials makes client_credentials grants answer status
// (503 temporarily_unavailable for 5xx, 400 unauthorized_client for
// 4xx) while status is not 0.
func (op *OP) FailClientCredentials(status int) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.cc.fail = status
}

// HoldClientCredentials makes client_credentials grants wait until
// release is called; held receives a value for each grant that arrives
// and waits (up to 64 unread).
func (op *OP) HoldClientCredentials() (held <-chan struct{}, release func()) {
	op.mu.Lock()
	defer op.mu.Unlock()
	hold, h := make(chan struct{}), make(chan struct{}, 64)
	op.cc.hold, op.cc.held = hold, h
	return h, sync.OnceFunc(func() {
		op.mu.Lock()
		op.cc.hold, op.cc.held = nil, nil
		op.mu.Unlock()
		close(hold)
	})
}

// clientCredentials answers a client_credentials grant of the
// authenticated clientID.
func (op *OP) clientCredentials(w http.ResponseWriter, r *http.Request, clientID string) {
	f := r.PostForm
	op.mu.Lock()
	hold, held := op.cc.hold, op.cc.held
	op.mu.Unlock()
	if hold != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	req := url.Values{}
	for k, vs := range f {
		if k != "client_secret" && k != "client_assertion" {
			req[k] = slices.Clone(vs)
		}
	}
	op.cc.requests = append(op.cc.requests, req)
	switch {
	case op.cc.fail >= 500:
		oauthError(w, op.cc.fail, "temporarily_unavailable", "the token service is down")
		return
	case op.cc.fail != 0:
		oauthError(w, op.cc.fail, "unauthorized_client", "client_credentials not allowed")
		return
	}
	op.cc.count++
	tok := "cc-" + random(24)
	ct := ClientToken{
		ClientID: clientID, Scope: strings.Join(strings.Fields(f.Get("scope")), " "),
		Resource: f.Get("resource"), Audience: f.Get("audience"), Expires: time.Now().Add(op.cc.ttl),
	}
	op.cc.tokens[tok] = ct
	body := map[string]any{"access_token": tok, "token_type": "Bearer"}
	if op.cc.ttl > 0 {
		body["expires_in"] = int(op.cc.ttl.Seconds())
	}
	if ct.Scope != "" {
		body["scope"] = ct.Scope
	}
	writeJSON(w, http.StatusOK, body)
}
