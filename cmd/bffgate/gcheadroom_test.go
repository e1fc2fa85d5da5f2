package main

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
)

// TestGCHeadroom: with the reserve, the collector's heap goal leaves at
// least gcHeadroom of garbage room, and the reserve itself is not resident.
func TestGCHeadroom(t *testing.T) {
	if gcReserve != nil {
		t.Fatal("reserved before the test")
	}
	defer func() { gcReserve = nil }()
	runtime.GC()
	rss0 := vmRSS(t)
	reserveGCHeadroom(func(string) string { return "" })
	rss1 := vmRSS(t)
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	goal, live := s[0].Value.Uint64(), s[1].Value.Uint64()
	if live < gcHeadroom || goal-live < gcHeadroom {
		t.Errorf("live %d, goal %d: want at least %d of room for garbage", live, goal, gcHeadroom)
	}
	if d := rss1 - rss0; d > 2<<20 {
		t.Errorf("the reserve made %d bytes resident, want its pages untouched", d)
	}
	reserveGCHeadroom(func(string) string { return "" }) // once
}

// TestGCHeadroomOff: GOGC=off leaves collection to the operator.
func TestGCHeadroomOff(t *testing.T) {
	defer func() { gcReserve = nil }()
	reserveGCHeadroom(func(k string) string {
		if k == "GOGC" {
			return "off"
		}
		return ""
	})
	if gcReserve != nil {
		t.Error("reserved with GOGC=off")
	}
}

func vmRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
