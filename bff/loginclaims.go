package bff

import (
	"encoding/json"

	"github.com/coreos/go-oidc/v3/oidc"
)

// sessionClaims returns what a login stores of its verified ID token idt
// and of the userinfo answer ui (nil without one): the claims, and the
// ID token's sid claim ("" if it has none or it is not a string).
// Without userinfo the claims are the ID token's as the IdP sent them (a
// JSON object go-oidc has decoded already), not decoded into a map and
// encoded again; with it, the ID token's claims with ui merged in
// (mergeUserinfo).
func sessionClaims(idt *oidc.IDToken, ui map[string]json.RawMessage) (json.RawMessage, string, error) {
	if ui != nil {
		var claims map[string]json.RawMessage
		if err := idt.Claims(&claims); err != nil {
			return nil, "", err
		}
		sid := stringClaim(claims["sid"])
		mergeUserinfo(claims, ui)
		raw, err := json.Marshal(claims)
		return raw, sid, err
	}
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
	return raw, stringClaim(c.SID), nil
}

// stringClaim returns the claim v if it is a JSON string, else "".
func stringClaim(v json.RawMessage) string {
	var s string
	if len(v) > 0 {
		_ = json.Unmarshal(v, &s)
	}
	return s
}
