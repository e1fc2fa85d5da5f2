package main

import (
	"runtime"
)

// gcHeadroom is the least garbage the heap may gather between two
// collections, whatever the live heap. Go's collector starts a cycle when
// the heap has grown by GOGC % of what is live (100 %: as much again),
// and each cycle marks the whole live heap: with the gateway's few MiB
// live, that is a cycle per few MiB of garbage, and a request paid about
// as many bytes of marking as it allocated (a bare proxy, whose live heap
// is below the runtime's 4 MiB floor, a seventh of that). A block of
// gcHeadroom bytes without pointers counts as live, so the collector
// waits for gcHeadroom more garbage, but costs no marking (it has no
// pointers) and usually no memory (nothing writes it; but the allocator
// zeroes, and so makes resident, pages it reuses). The price is up to
// gcHeadroom more resident garbage, plus at most the block, a fixed amount
// whatever the load (10,000 open streams pay it once, not per stream).
const gcHeadroom = 8 << 20

// gcReserve holds the block; nothing reads it.
var gcReserve []byte

// reserveGCHeadroom allocates the block, unless GOGC=off (the operator
// chose when to collect: with GOMEMLIMIT, the block would count against
// the limit).
func reserveGCHeadroom(getenv func(string) string) {
	if getenv("GOGC") == "off" || gcReserve != nil {
		return
	}
	gcReserve = make([]byte, gcHeadroom)
	runtime.KeepAlive(gcReserve)
}
