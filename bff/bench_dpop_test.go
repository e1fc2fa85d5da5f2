package bff

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/bffgate/bffgate/proxy"
	"github.com/bffgate/bffgate/session"
)

// BenchmarkAPIRequestDPoP sets an API call with a bearer token beside the
// same call of a session whose token is DPoP-bound (issue 17, item 6): the
// difference is the proof, one ES256 signature per call with the
// session's key kept parsed.
func BenchmarkAPIRequestDPoP(b *testing.B) {
	target, transport := benchUpstream(b)
	bearer, bc := benchGateway(b, target, transport, nil)
	dp, dc := benchDPoPGateway(b, target, transport)
	b.Run("bearer", func(b *testing.B) { benchAPI(b, bearer, bc, 1) })
	b.Run("dpop", func(b *testing.B) { benchAPI(b, dp, dc, 1) })
}

// benchDPoPGateway is benchGateway for an app with dpop = true in front
// of an OP that binds its tokens.
func benchDPoPGateway(b *testing.B, target *url.URL, transport http.RoundTripper) (http.Handler, string) {
	b.Helper()
	h, cookie := dpopSignedIn(b)
	a := h.gw.cur.Load().apps[0]
	p, err := proxy.New(proxy.Config{Name: "bench", Target: target, Token: "user", IsGatewayCookie: session.IsGatewayCookie, WriteError: writeJSONError,
		DPoPKeys: a.dpop.keys, DPoP: true}, a.dpop.transport(transport), a.refresher, h.gw.sessions, h.gw.logger)
	if err != nil {
		b.Fatal(err)
	}
	a.apis[0].proxy = p
	return h.gw.Handler(), cookie
}
