package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/bffgate/bffgate/internal/clientauth"
)

// Pushed authorization requests (RFC 9126): with PAR the login posts the
// authorization parameters to the IdP's
// pushed_authorization_request_endpoint, authenticated like the token
// endpoint, and sends the browser to the authorization endpoint with
// only client_id and the request_uri it got back: state, nonce, the PKCE
// challenge and the redirect_uri never travel through the browser.

// The values of the par key.
const (
	parAuto     = "auto"     // when the IdP has the endpoint
	parRequired = "required" // always; an IdP without the endpoint is a configuration error
	parOff      = "off"      // never; an IdP that requires PAR is a configuration error
)

// maxPARResponse bounds the PAR endpoint's answer read.
const maxPARResponse = 64 << 10

// parErrors checks the par key ("" is auto).
func (c *AppConfig) parErrors() []error {
	switch c.PAR {
	case "", parAuto, parRequired, parOff:
		return nil
	}
	return []error{fmt.Errorf("par: must be \"auto\", \"required\" or \"off\", not %q", c.PAR)}
}

// parEndpoint returns the pushed authorization request endpoint the
// login uses with this par setting and discovery ("": none), or the
// configuration error when they contradict each other.
func parEndpoint(mode string, m providerMeta) (string, error) {
	switch {
	case mode == parOff && m.RequirePAR:
		return "", errors.New("par: is \"off\", but the IdP requires pushed authorization requests (require_pushed_authorization_requests); set par = \"auto\"")
	case mode == parOff:
		return "", nil
	case m.PAREndpoint == "" && (mode == parRequired || m.RequirePAR):
		return "", errors.New("par: pushed authorization requests are required, but the IdP's discovery has no pushed_authorization_request_endpoint")
	}
	if m.PAREndpoint != "" {
		if err := checkURL(m.PAREndpoint); err != nil {
			return "", fmt.Errorf("par: the IdP's pushed_authorization_request_endpoint: %w", err)
		}
	}
	return m.PAREndpoint, nil
}

// errPARPage is the page of a failed pushed authorization request (a
// 502: the IdP failed the gateway); nothing of the IdP's answer is shown.
const errPARPage = "The identity provider did not accept the sign-in request. Please try again later."

// pushAuthorization posts the authorization request of authURL (the URL
// x/oauth2 built from authEndpoint) to endpoint, authenticated by auth,
// and returns the URL the browser goes to: authEndpoint (with its own
// query, if it has one) with only client_id and request_uri added.
func pushAuthorization(ctx context.Context, client *http.Client, auth *clientauth.Client, endpoint, authEndpoint, authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", fmt.Errorf("authorization url: %w", err)
	}
	ep, err := url.Parse(authEndpoint)
	if err != nil {
		return "", fmt.Errorf("authorization endpoint: %w", err)
	}
	form := u.Query()
	for k := range ep.Query() { // the endpoint's own query stays on its URL
		form.Del(k)
	}
	form.Set("client_id", auth.ID)
	req, err := auth.NewRequest(ctx, endpoint, form)
	if err != nil {
		return "", fmt.Errorf("pushed authorization request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("pushed authorization request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPARResponse))
	if err != nil {
		return "", fmt.Errorf("pushed authorization request: read the answer: %w", err)
	}
	var out struct {
		RequestURI string `json:"request_uri"`
		Error      string `json:"error"`
	}
	jsonErr := json.Unmarshal(body, &out)
	switch {
	case resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK:
		code := "none" // only a well-formed error code is logged
		if errorCode.MatchString(out.Error) {
			code = out.Error
		}
		return "", fmt.Errorf("pushed authorization request: status %d, error %s", resp.StatusCode, code)
	case jsonErr != nil:
		return "", fmt.Errorf("pushed authorization request: the answer is not JSON: %w", jsonErr)
	case out.RequestURI == "" || len(out.RequestURI) > 2048:
		return "", errors.New("pushed authorization request: the answer has no usable request_uri")
	}
	q := ep.Query()
	q.Set("client_id", auth.ID)
	q.Set("request_uri", out.RequestURI)
	ep.RawQuery = q.Encode()
	return ep.String(), nil
}
