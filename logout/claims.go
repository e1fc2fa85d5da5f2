package logout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bffgate/bffgate/internal/oidcspec"
)

// checkClaims applies §2.6 steps 3–6 and the jti presence check to the
// verified payload, in the spec's order, with raw members so that an absent
// claim is told from an empty one.
func (v *Verifier) checkClaims(c map[string]json.RawMessage) (*Token, error) {
	tok := &Token{}
	var ok bool
	if tok.Issuer, ok = str(c, "iss"); !ok || tok.Issuer != v.cfg.Issuer {
		if len(tok.Issuer) > MaxIdentifierLen {
			return nil, invalid(ReasonTooLong, fmt.Sprintf("the iss claim is longer than %d bytes and not the expected issuer", MaxIdentifierLen), nil)
		}
		return nil, invalid(ReasonIss, "the iss claim does not match the expected issuer", nil)
	}
	if tok.Audience, ok = audience(c["aud"]); !ok || !slices.Contains(tok.Audience, v.cfg.ClientID) {
		return nil, invalid(ReasonAud, "the aud claim does not contain the client_id", nil)
	}
	for _, a := range tok.Audience {
		if a != v.cfg.ClientID && !slices.Contains(v.cfg.TrustedAudiences, a) && v.relaxed&relaxAud == 0 {
			return nil, invalid(ReasonAud, "the aud claim contains an untrusted audience", nil).relaxable(relaxAud)
		}
	}
	if _, present := c["azp"]; present {
		if azp, ok := str(c, "azp"); !ok || azp != v.cfg.ClientID {
			return nil, invalid(ReasonAzp, "the azp claim is not the client_id", nil)
		}
	}

	now := v.cfg.Now()
	skew := v.cfg.ClockSkew
	if tok.IssuedAt, ok = numericDate(c["iat"]); !ok {
		return nil, invalid(ReasonIatMissing, "the iat claim is missing or not a number", nil)
	}
	if tok.IssuedAt.After(now.Add(skew)) {
		return nil, invalid(ReasonIatFuture, "the iat claim is in the future", nil)
	}
	if now.Sub(tok.IssuedAt) > v.cfg.MaxTokenAge {
		return nil, invalid(ReasonIatTooOld, "the iat claim is older than the accepted token age", nil)
	}
	if _, present := c["exp"]; present || !(v.cfg.AllowMissingExp || v.relaxed&relaxExp != 0) {
		if tok.Expiry, ok = numericDate(c["exp"]); !ok {
			err := invalid(ReasonExpMissing,
				"the exp claim is missing or not a number (allow_missing_exp accepts tokens without exp)", nil)
			if !present {
				err.relaxable(relaxExp)
			}
			return nil, err
		}
		if now.After(tok.Expiry.Add(skew)) {
			return nil, invalid(ReasonExpired, "the logout token has expired", nil)
		}
	}

	sub, subOK := optStr(c, "sub")
	sid, sidOK := optStr(c, "sid")
	if !subOK || !sidOK {
		return nil, invalid(ReasonMalformed, "the sub and sid claims must be strings", nil)
	}
	if sub == "" && sid == "" {
		return nil, invalid(ReasonSubSIDMissing, "the logout token has neither a sub nor a sid claim", nil)
	}
	if len(sub) > MaxIdentifierLen || len(sid) > MaxIdentifierLen {
		return nil, invalid(ReasonTooLong, fmt.Sprintf("the sub and sid claims must be at most %d bytes", MaxIdentifierLen), nil)
	}
	tok.Subject, tok.SID = sub, sid
	if !eventsOK(c["events"]) {
		return nil, invalid(ReasonEvents,
			"the events claim must be an object whose back-channel logout member is an object", nil)
	}
	if _, present := c["nonce"]; present {
		return nil, invalid(ReasonNonce, "a logout token must not contain a nonce claim", nil)
	}
	if tok.JTI, ok = str(c, "jti"); !ok || tok.JTI == "" {
		return nil, invalid(ReasonJTIMissing, "the jti claim is missing", nil)
	}
	if len(tok.JTI) > MaxIdentifierLen {
		return nil, invalid(ReasonTooLong, fmt.Sprintf("the jti claim must be at most %d bytes", MaxIdentifierLen), nil)
	}
	return tok, nil
}

// str returns a string claim; ok is false if absent or not a string.
func str(c map[string]json.RawMessage, name string) (string, bool) {
	raw, present := c[name]
	if !present || !isKind(raw, '"') {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// optStr returns an optional string claim; ok is false only if present and
// not a string.
func optStr(c map[string]json.RawMessage, name string) (string, bool) {
	if _, present := c[name]; !present {
		return "", true
	}
	return str(c, name)
}

// audience accepts a string or an array of strings (RFC 7519 §4.1.3).
func audience(raw json.RawMessage) ([]string, bool) {
	var one string
	if isKind(raw, '"') && json.Unmarshal(raw, &one) == nil {
		return []string{one}, true
	}
	var many []string
	if !isKind(raw, '[') || json.Unmarshal(raw, &many) != nil || len(many) == 0 {
		return nil, false
	}
	return many, true
}

// numericDate parses a JSON number of seconds since the epoch.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	var f float64
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' || json.Unmarshal(raw, &f) != nil || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// eventsOK: events is an object whose back-channel logout member is an
// object (empty or not); other members are ignored.
func eventsOK(raw json.RawMessage) bool {
	var events map[string]json.RawMessage
	if !isKind(raw, '{') || json.Unmarshal(raw, &events) != nil {
		return false
	}
	member, ok := events[oidcspec.BackchannelLogoutEvent]
	return ok && isKind(member, '{')
}

// isKind reports whether a JSON value starts with the given byte: '"'
// string, '[' array, '{' object. It rules out null, which Unmarshal would
// silently accept.
func isKind(raw json.RawMessage, first byte) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == first
}

// MaxIdentifierLen caps, in bytes, every identifier the gateway takes
// from a request or a token (iss, sid, sub, jti): longer ones are refused
// before they reach a store, a tombstone or the replay cache.
const MaxIdentifierLen = 255

// ReasonTooLong is the rejection reason of an identifier over
// MaxIdentifierLen.
const ReasonTooLong = "too_long"
