// Package e2e holds the end-to-end tests of bffgate: the gateway binary,
// the demo IdP (oidc-provider, Node), the sample SPA and API, and a
// headless Chromium that signs in and out through the IdP's real pages.
//
// Everything is in the _test.go files; see README.md beside this file.
package e2e
