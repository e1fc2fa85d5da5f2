package bff

import (
	"fmt"
	"regexp"
	"strings"
)

// The typ header of logout tokens (RFC 8725 §3.11, Back-Channel Logout
// 1.0 §2.4): a media type, "application/" optional, compared without
// case. A logout token is "logout+jwt"; "JWT" is what receivers and IdPs
// that predate typed logout tokens use. The gateway sends only those
// (logout_token_typ): a receiver refuses anything else. From an IdP
// (logout_typ) it expects a JWT media type, "JWT" or "<name>+jwt" (an IdP
// may type its tokens as, say, secevent+jwt); "banana" or
// "application/json" can never name a logout token.

// logoutTypRule is the message for a typ value outside logoutTyps.
const logoutTypRule = `must be "logout+jwt" (or "application/logout+jwt"; "JWT" for receivers that predate typed logout tokens)`

// normTyp is a typ value as a media type compares: lower case, without
// "application/".
func normTyp(s string) string {
	return strings.TrimPrefix(strings.ToLower(s), "application/")
}

func isLogoutTyp(s string) bool {
	n := normTyp(s)
	return n == "logout+jwt" || n == "jwt"
}

// jwtMediaType is "JWT" or a structured "+jwt" subtype (RFC 6838 §4.2
// restricted names), "application/" optional.
var jwtMediaType = regexp.MustCompile(`^(?i)(application/)?([a-z0-9][a-z0-9!#$&^_.-]{0,120}\+)?jwt$`)

// typErrors checks logout_token_typ (sent downstream), logout_typ
// (expected from the IdP) and that require_logout_typ agrees with
// logout_typ: require_logout_typ means logout+jwt, so a different
// logout_typ would refuse every token. The pair is refused rather than one
// silently winning.
func (c *AppConfig) typErrors() []error {
	var errs []error
	if c.LogoutTokenTyp != "" && !isLogoutTyp(c.LogoutTokenTyp) { // "": Defaults' logout+jwt
		errs = append(errs, fmt.Errorf("logout_token_typ: %s, not %q", logoutTypRule, c.LogoutTokenTyp))
	}
	switch {
	case c.ExpectedTyp == "":
	case !jwtMediaType.MatchString(c.ExpectedTyp):
		errs = append(errs, fmt.Errorf("logout_typ: must be a JWT media type such as \"logout+jwt\" (\"application/\" optional) or \"JWT\", not %q", c.ExpectedTyp))
	case c.RequireTyp && normTyp(c.ExpectedTyp) != "logout+jwt":
		errs = append(errs, fmt.Errorf("require_logout_typ: requires typ logout+jwt, but logout_typ = %q accepts only %q; keep one of them", c.ExpectedTyp, c.ExpectedTyp))
	}
	return errs
}
