package testop

import (
	"net/http"
	"net/url"
	"time"
)

// Pushed authorization requests (RFC 9126) and the authorization
// response's iss parameter (RFC 9207).

// parLife is how long a request_uri can be used.
const parLife = time.Minute

// requestURIPrefix is the form RFC 9126 §2.2 suggests.
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// pushed is a stored pushed authorization request.
type pushed struct {
	clientID string
	params   url.Values
	expires  time.Time
}

// ISSMode says which iss /authorize sends back (SetISS).
type ISSMode string

// The iss modes.
const (
	// ISSAdvertised sends the issuer when discovery advertises
	// authorization_response_iss_parameter_supported (the default).
	ISSAdvertised ISSMode = ""
	// ISSOmit never sends iss.
	ISSOmit ISSMode = "omit"
	// ISSWrong always sends WrongIssuer.
	ISSWrong ISSMode = "wrong"
	// ISSAlways sends the issuer even when not advertised.
	ISSAlways ISSMode = "always"
)

// WrongIssuer is the iss ISSWrong sends: another IdP's (a mix-up).
const WrongIssuer = "https://attacker.example"

// SetISS sets which iss the next authorizations send back.
func (op *OP) SetISS(m ISSMode) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.issMode = m
}

// FailPAR makes the pushed authorization request endpoint answer status
// with this error and description while status is not 0.
func (op *OP) FailPAR(status int, code, desc string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.parFail = parFailure{status: status, code: code, desc: desc}
}

type parFailure struct {
	status     int
	code, desc string
}

// PARCalls counts requests to the pushed authorization request endpoint.
func (op *OP) PARCalls() int { return int(op.parCalls.Load()) }

// AuthorizeRequests returns the query of every /authorize request, in
// order.
func (op *OP) AuthorizeRequests() []url.Values {
	op.mu.Lock()
	defer op.mu.Unlock()
	out := make([]url.Values, len(op.authorizes))
	for i, q := range op.authorizes {
		out[i] = cloneValues(q)
	}
	return out
}

// par is POST /par: it authenticates the client like the token
// endpoint, stores the parameters and answers 201 with a request_uri.
func (op *OP) par(w http.ResponseWriter, r *http.Request) {
	op.parCalls.Add(1)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	op.mu.Lock()
	fail := op.parFail
	op.mu.Unlock()
	if fail.status != 0 {
		oauthError(w, fail.status, fail.code, fail.desc)
		return
	}
	clientID := op.clientAuth(w, r, "par")
	if clientID == "" {
		return
	}
	f := r.PostForm
	switch {
	case f.Has("request_uri"):
		oauthError(w, http.StatusBadRequest, "invalid_request", "request_uri is not allowed here")
		return
	case f.Get("client_id") != "" && f.Get("client_id") != clientID:
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id is not the authenticated client")
		return
	}
	params := url.Values{}
	for k, vs := range f {
		switch k {
		case "client_secret", "client_assertion", "client_assertion_type":
		default:
			params[k] = vs
		}
	}
	params.Set("client_id", clientID)
	uri := requestURIPrefix + random(24)
	op.mu.Lock()
	op.pushed[uri] = &pushed{clientID: clientID, params: params, expires: time.Now().Add(parLife)}
	op.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int(parLife.Seconds())})
}

// authorizeParams returns the parameters of an /authorize request: the
// pushed ones for a request_uri (single use, for the same client_id), or
// the query. With RequirePAR a request without request_uri is refused.
// It reports a refusal as a message (the answer is a 400). op.mu is held.
func (op *OP) authorizeParams(q url.Values) (url.Values, string) {
	uri := q.Get("request_uri")
	if uri == "" {
		if op.cfg.RequirePAR {
			return nil, "pushed authorization request required"
		}
		return q, ""
	}
	p := op.pushed[uri]
	delete(op.pushed, uri)
	switch {
	case p == nil || time.Now().After(p.expires):
		return nil, "unknown or expired request_uri"
	case p.clientID != q.Get("client_id"):
		return nil, "request_uri of another client"
	}
	return p.params, ""
}

// responseISS returns the iss to send back, or "". op.mu is held.
func (op *OP) responseISS() string {
	switch op.issMode {
	case ISSOmit:
		return ""
	case ISSWrong:
		return WrongIssuer
	case ISSAlways:
		return op.URL
	}
	if op.cfg.AuthorizationResponseISS {
		return op.URL
	}
	return ""
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
