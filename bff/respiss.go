package bff

import (
	"errors"
	"net/http"
	"net/url"
)

// The authorization response's iss parameter (RFC 9207), the defence
// against mix-up attacks: a response (code or error) that names another
// issuer than the app's was not meant for this login and is refused
// before its code is exchanged. An IdP that advertises
// authorization_response_iss_parameter_supported must send iss; a
// present iss is always compared, advertised or not.

// issMsg is the page of a refused iss: it names no issuer.
const issMsg = "The sign-in response did not come from this application's identity provider. Please start the sign-in again."

// checkResponseISS checks q's iss against issuer (exact string
// comparison, RFC 9207 §2.4) as p's discovery asks.
func checkResponseISS(p *provider, issuer string, q url.Values) error {
	iss, present := q.Get("iss"), q.Has("iss")
	switch {
	case !present && p.meta.ISSParameter:
		return &loginError{reason: "iss_missing", page: pageError(http.StatusBadRequest, issMsg, errors.New("authorization response without iss, which the IdP advertises"))}
	case present && iss != issuer:
		return &loginError{reason: "iss_mismatch", page: pageError(http.StatusBadRequest, issMsg, errors.New("authorization response iss is not the app's issuer"))}
	}
	return nil
}
