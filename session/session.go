// Package session owns the gateway's server-side sessions: the Session
// record, the stores that keep it (in memory and in Redis), the indexes by
// (iss, sid) and (iss, sub) that revocation uses, tombstones for logged-out
// sids and subs, the "session ended" observers, and the cookie codec that
// carries only the session id to the browser.
package session

import (
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Errors callers branch on.
var (
	// ErrNotFound means there is no live session with that id.
	ErrNotFound = errors.New("session not found")
	// ErrRevoked means a session cannot be created (or used) because a
	// logout for its (iss, sid) or (iss, sub) was received: a tombstone.
	ErrRevoked = errors.New("session revoked")
)

// Cause says why a session ended (or started, for audit).
type Cause string

// The causes of a session's end.
const (
	CauseLogin         Cause = "login" // audit only: a session started
	CauseBackchannel   Cause = "backchannel"
	CauseFrontchannel  Cause = "frontchannel"
	CauseRPInitiated   Cause = "rp_initiated"
	CauseAdmin         Cause = "admin"
	CauseRefreshFailed Cause = "refresh_failed"
	CauseExpired       Cause = "expired"
	// CauseReplaced: a new login in the same browser replaced the session.
	CauseReplaced Cause = "replaced"
	// CauseUser: the user ended it from another of their sessions
	// (POST /bff/sessions/end).
	CauseUser Cause = "user"
	// CauseConfig: a configuration reload removed the session's app or
	// changed its issuer or client_id, so the session cannot be used.
	CauseConfig Cause = "config"
)

// Session is one signed-in browser for one app. Stores hand out copies:
// mutating a returned Session changes nothing until it is saved with Update.
type Session struct {
	ID      string `json:"id"`  // at least 128 random bits, see NewID
	App     string `json:"app"` // the app's name from config
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	SID     string `json:"sid,omitempty"` // the IdP's session id, if it sent one

	IDToken      string          `json:"id_token,omitempty"` // for id_token_hint
	Claims       json.RawMessage `json:"claims,omitempty"`   // the ID token's claims, for /bff/user
	AccessToken  string          `json:"access_token,omitempty"`
	RefreshToken string          `json:"refresh_token,omitempty"`
	TokenExpiry  time.Time       `json:"token_expiry,omitzero"`
	// TokenIssued is when the access token was obtained: with TokenExpiry
	// it gives the token's lifetime, which bounds the refresh margin.
	TokenIssued  time.Time `json:"token_issued,omitzero"`
	SessionState string    `json:"session_state,omitempty"` // Session Management 1.0
	// TokenType is the token response's token_type: "DPoP" when the IdP
	// bound the access token to DPoPKey (RFC 9449), else "Bearer" or "".
	TokenType string `json:"token_type,omitempty"`
	// DPoPKey is the session's DPoP private key (the raw P-256 scalar,
	// dpop.Key.Bytes) for an app with DPoP on; fixed at Create. A shared
	// store keeps it sealed with the tokens.
	DPoPKey []byte `json:"dpop_key,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
	// Browser is a short description of the browser that signed in
	// (from its User-Agent, at most MaxBrowserLen bytes) and Address the
	// client address it signed in from (at most MaxAddressLen bytes): what
	// the user's own session list shows. Fixed at Create.
	Browser string `json:"browser,omitempty"`
	Address string `json:"addr,omitempty"`
	// Upstreams holds the names of the upstreams this session has called,
	// sorted and without duplicates.
	Upstreams []string `json:"upstreams,omitempty"`
}

// Caps of Session.Browser and Session.Address.
const (
	MaxBrowserLen = 128
	MaxAddressLen = 64
)

// Clone returns a deep copy of s.
func (s *Session) Clone() *Session {
	c := *s
	c.Claims = slices.Clone(s.Claims)
	c.Upstreams = slices.Clone(s.Upstreams)
	c.DPoPKey = slices.Clone(s.DPoPKey)
	return &c
}

// AddUpstream records that the session used the named upstream and
// reports whether that is new.
func (s *Session) AddUpstream(name string) bool {
	i, found := slices.BinarySearch(s.Upstreams, name)
	if found {
		return false
	}
	s.Upstreams = slices.Insert(s.Upstreams, i, name)
	return true
}

// UsedUpstream reports whether the session has called the named upstream.
func (s *Session) UsedUpstream(name string) bool {
	_, found := slices.BinarySearch(s.Upstreams, name)
	return found
}

// Expiry returns when the session ends if it is not used again: the
// earlier of LastSeen+idle and CreatedAt+absolute. A zero duration
// disables that limit.
func (s *Session) Expiry(idle, absolute time.Duration) time.Time {
	var exp time.Time
	if idle > 0 {
		exp = s.LastSeen.Add(idle)
	}
	if absolute > 0 {
		if a := s.CreatedAt.Add(absolute); exp.IsZero() || a.Before(exp) {
			exp = a
		}
	}
	return exp
}
