//go:build !unix

package bff

// fdSoftLimit is 0 (unknown) where there is no RLIMIT_NOFILE.
func fdSoftLimit() int { return 0 }
