package bff

import (
	"encoding/json"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"
)

// idTokenClaims returns what a login stores of its verified ID token:
// the token's claims as the IdP sent them (a JSON object go-oidc has
// decoded already; the session keeps it without decoding it into a map
// and encoding it again) and its sid claim, "" if it has none or it is
// not a string.
func idTokenClaims(idt *oidc.IDToken) (json.RawMessage, string, error) {
	var raw json.RawMessage
	if err := idt.Claims(&raw); err != nil {
		return nil, "", err
	}
	var c struct {
		SID json.RawMessage `json:"sid"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, "", err
	}
	var sid string
	if len(c.SID) > 0 {
		_ = json.Unmarshal(c.SID, &sid)
	}
	return raw, sid, nil
}

// mergedUserinfo returns the ID token's claims raw with the userinfo
// answer ui merged in (mergeUserinfo).
func mergedUserinfo(raw json.RawMessage, ui map[string]json.RawMessage) (json.RawMessage, error) {
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, fmt.Errorf("id token claims: %w", err)
	}
	mergeUserinfo(claims, ui)
	return json.Marshal(claims)
}
