package bff

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/bffgate/bffgate/proxy"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

// benchParallelism is the number of concurrent requests per GOMAXPROCS
// in BenchmarkAPIRequestStores.
const benchParallelism = 8

// BenchmarkAPIRequestStores measures authenticated API calls through the
// gateway with the memory store and with the Redis store (a local
// redis-server started here), beside a bare httputil.ReverseProxy, in one
// run against one upstream. The Redis store reads the session from Redis
// on every request (no local cache), and decrypts its tokens.
func BenchmarkAPIRequestStores(b *testing.B) {
	target, transport := benchUpstream(b)

	bare := bareProxy(target, transport)
	memory, memCookie := benchGateway(b, target, transport, nil)

	srv, err := storetest.StartRedis()
	if errors.Is(err, storetest.ErrNoRedis) && os.Getenv("CI") != "true" {
		b.Skip("redis-server is not installed")
	}
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	rdb, err := session.NewRedisClient(session.Config{RedisURL: srv.URL(0)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	rs, err := session.NewRedisStore(rdb, session.RedisConfig{Secret: "bench-secret-0123456789abcdef0123456789"})
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	redisGW, redisCookie := benchGateway(b, target, transport, rs)

	// Many requests in flight, as on a server: with only GOMAXPROCS of
	// them, each Redis round trip would leave a CPU idle.
	run := func(b *testing.B, hdl http.Handler, cookie string) { benchAPI(b, hdl, cookie, benchParallelism) }
	b.Run("bare", func(b *testing.B) { run(b, bare, "") })
	b.Run("memory", func(b *testing.B) { run(b, memory, memCookie) })
	b.Run("redis", func(b *testing.B) { run(b, redisGW, redisCookie) })
}

// benchGateway returns a gateway whose API proxies to target, with a
// signed-in session's cookie; store nil means the harness's memory store.
func benchGateway(b *testing.B, target *url.URL, transport http.RoundTripper, store session.Store) (http.Handler, string) {
	b.Helper()
	o := harnessOpts{}
	if store != nil {
		o.wrapStore = func(session.Store) session.Store { return store }
	}
	h := newHarness(b, o)
	c := h.login("/")
	cookie := h.sessionCookie(c)
	a := h.gw.cur.Load().apps[0]
	p, err := proxy.New(proxy.Config{Name: "bench", Target: target, Token: "user", IsGatewayCookie: session.IsGatewayCookie, WriteError: writeJSONError}, transport, a.refresher, h.gw.sessions, h.gw.logger)
	if err != nil {
		b.Fatal(err)
	}
	a.apis[0].proxy = p
	return h.gw.Handler(), cookie
}
