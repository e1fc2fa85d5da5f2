// Package load is bffgate's load harness (issue 7): it runs the gateway
// binary beside the targets it is compared with, on one machine, in one
// run, and writes the figures to docs/benchmarks.md.
//
// Everything is in the _test.go files, built only with the loadbench tag
// and run only with BFFGATE_LOAD=1 (so that go test ./... neither runs nor
// skips them); `make bench` runs them. The targets, each a separate process:
//
//	A  upstream        the API hit directly (./upstream), the physical limit
//	B  bare proxy      httputil.ReverseProxy injecting a header (./bareproxy)
//	C  bffgate memory  the gateway binary, store = "memory"
//	D  bffgate redis   the gateway binary, store = "redis", when
//	                   redis-server is installed and the build supports it
//	E  bffgate DPoP    C with dpop = true: tokens bound to the session's
//	                   key, a fresh ES256 proof per API call (issue 17)
//	O  oauth2-proxy    when a binary is given or installed (cookie store,
//	                   same OP, same upstream; not a goal, a comparison)
//
// The user logs in through the in-process test OP (internal/testop); the
// load is then authenticated API calls: cookie → session → token →
// upstream. Each target's CPU per request comes from /proc/<pid>/stat.
// A further gateway holds 10,000 open /bff/events streams (issue 15):
// memory per stream, CPU at rest, and back-channel logouts pushed to
// their tabs (streams_test.go). Logins are split into the test OP's
// handler time and the gateway's own (opclock_test.go).
package load
