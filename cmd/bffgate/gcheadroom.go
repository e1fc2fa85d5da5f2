package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// defaultGCHeadroom is the least garbage the heap may gather between two
// collections, whatever the live heap, unless BFFGATE_GC_HEADROOM says
// otherwise. Go's collector starts a cycle when the heap has grown by
// GOGC % of what is live (100 %: as much again), and each cycle marks the
// whole live heap: with the gateway's few MiB live, that is a cycle per
// few MiB of garbage, and a request paid about as many bytes of marking
// as it allocated (a bare proxy, whose live heap is below the runtime's
// 4 MiB floor, a seventh of that). A block of headroom bytes without
// pointers counts as live, so the collector waits for that much more
// garbage, but costs no marking (it has no pointers) and little memory
// of its own (nothing writes it; but the allocator zeroes, and so makes
// resident, pages it reuses). The price is up to the headroom in more
// resident garbage under load, plus at most the block, a fixed amount
// whatever the load (10,000 open streams pay it once, not per stream).
// Measured side by side under wrk (docs/benchmarks.md): 8 MiB → 32 MiB
// took 1.5–3 µs of CPU off each API request for ≈ 24 MiB more RSS.
const defaultGCHeadroom = 32 << 20

// gcHeadroomEnv overrides defaultGCHeadroom: a size as GOMEMLIMIT takes
// it (a number of bytes with an optional B, KiB, MiB or GiB suffix); 0
// reserves nothing.
const gcHeadroomEnv = "BFFGATE_GC_HEADROOM"

// gcReserve holds the block; nothing reads it.
var gcReserve []byte

// reserveGCHeadroom allocates the block, unless GOGC=off (the operator
// chose when to collect: with GOMEMLIMIT, the block would count against
// the limit) or BFFGATE_GC_HEADROOM=0. An invalid BFFGATE_GC_HEADROOM is
// an error (the gateway does not start).
func reserveGCHeadroom(getenv func(string) string) error {
	size := int64(defaultGCHeadroom)
	if v := getenv(gcHeadroomEnv); v != "" {
		n, err := parseSize(v)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", gcHeadroomEnv, v, err)
		}
		size = n
	}
	if getenv("GOGC") == "off" || gcReserve != nil || size == 0 {
		return nil
	}
	gcReserve = make([]byte, size)
	runtime.KeepAlive(gcReserve)
	return nil
}

// maxGCHeadroom bounds BFFGATE_GC_HEADROOM: a typo must not reserve the
// machine.
const maxGCHeadroom = 4 << 30

// parseSize reads a byte count as GOMEMLIMIT does: digits, then B, KiB,
// MiB or GiB (none: bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("must be a byte count such as 32MiB, 64MiB or 0 (none)")
	}
	if n > maxGCHeadroom/mult {
		return 0, fmt.Errorf("must be at most 4GiB")
	}
	return n * mult, nil
}
