// Package upstream owns the upstream apps and APIs the gateway talks to:
// the tuned HTTP transport shared by the proxies, the PEM key loader, and
// the gateway's side as an OpenID Provider for its downstream apps
// (Back-Channel Logout 1.0, sender side). Signer signs their logout tokens
// and serves the discovery document and JWKS they validate them with;
// Notifier delivers the tokens to their back-channel logout URIs in the
// background, with retries, behind a Queue (in memory by default).
package upstream
