package main

import "testing"

// TestCheckConfigJWKSLimits: -check-config refuses JWKS wait limits out of
// their ranges, each named by its key.
func TestCheckConfigJWKSLimits(t *testing.T) {
	path := testConfig{scheme: "https", app: `jwks_refetch_interval = "10ms"
jwks_refetch_wait = "1m"
jwks_max_waiters = -1`}.write(t)
	wantProblems(t, path,
		"apps[0].jwks_refetch_interval: must be between 1s and 1h",
		"apps[0].jwks_refetch_wait: must be between 0 and 10s",
		"apps[0].jwks_max_waiters: must be between 1 and 10000",
	)
}
