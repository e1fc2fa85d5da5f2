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
//
// The user logs in through the in-process test OP (internal/testop); the
// load is then authenticated API calls: cookie → session → token →
// upstream.
package load
