// Package upstream owns the upstream apps and APIs the gateway talks to:
// their parsed targets, the tuned HTTP transport shared by the proxies, and
// the gateway's side as an OpenID Provider for its downstream apps
// (Back-Channel Logout 1.0, sender side). Signer signs their logout tokens
// and serves the discovery document and JWKS they validate them with;
// Notifier delivers the tokens to their back-channel logout URIs in the
// background, with retries, behind a Queue (in memory by default).
package upstream

import (
	"errors"
	"fmt"
	"net/url"
)

// Target is one named upstream: an app's frontend or one of its APIs.
type Target struct {
	Name string   // from config, used in logs, metrics and session usage
	URL  *url.URL // absolute http(s) URL, no query, fragment or userinfo
}

// ParseTarget parses raw as the base URL of the upstream called name. It
// must be an absolute http or https URL with a host and without userinfo,
// query or fragment. A path is allowed: request paths are appended to it.
//
// Errors never repeat raw, which might hold credentials.
func ParseTarget(name, raw string) (Target, error) {
	if name == "" {
		return Target{}, errors.New("upstream: name must be set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("upstream %q: not a valid URL", name)
	}
	var errs []error
	if u.Scheme != "http" && u.Scheme != "https" {
		errs = append(errs, errors.New("scheme must be http or https"))
	}
	if u.Host == "" || u.Opaque != "" {
		errs = append(errs, errors.New("must be an absolute URL with a host"))
	}
	if u.User != nil {
		errs = append(errs, errors.New("must not contain userinfo"))
	}
	if u.RawQuery != "" || u.ForceQuery {
		errs = append(errs, errors.New("must not contain a query"))
	}
	if u.Fragment != "" || u.RawFragment != "" {
		errs = append(errs, errors.New("must not contain a fragment"))
	}
	if err := errors.Join(errs...); err != nil {
		return Target{}, fmt.Errorf("upstream %q: %w", name, err)
	}
	return Target{Name: name, URL: u}, nil
}
