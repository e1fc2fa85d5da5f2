//go:build unix

package bff

import "syscall"

// fdSoftLimit is the process's soft RLIMIT_NOFILE (which the Go runtime
// raises to the hard limit at start-up), capped at 1<<20; 0 if unknown.
func fdSoftLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return int(min(r.Cur, 1<<20))
}
