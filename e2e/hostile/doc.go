// Package hostile replays hostile traffic against the built gateway binary
// (issue 12) and asserts what it may cost the gateway: memory, goroutines,
// open descriptors, temporary files and Redis keys stay within stated
// bounds, no path trick reaches an upstream, and a genuine user and a
// genuine back-channel logout keep working while the attack runs.
//
// Everything is in hostile_test.go and the files beside it. The test
// builds ./cmd/bffgate, runs it with store = "redis" against a
// redis-server it starts, signs users in through the in-process test OP
// (internal/testop), and sends only loopback traffic, bounded in count and
// time. Without redis-server it skips, except with CI=true, where that is
// a failure.
package hostile
