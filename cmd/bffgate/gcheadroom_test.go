package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

// TestGCHeadroom: with the reserve, the collector's heap goal leaves at
// least gcHeadroom of garbage room. Whether the reserve's pages become
// resident is not asserted: fresh pages stay untouched, but the allocator
// zeroes (and so makes resident) pages it reuses, which happened in about
// one fresh test process in four.
func TestGCHeadroom(t *testing.T) {
	if gcReserve != nil {
		t.Fatal("reserved before the test")
	}
	defer func() { gcReserve = nil }()
	runtime.GC()
	reserveGCHeadroom(func(string) string { return "" })
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	goal, live := s[0].Value.Uint64(), s[1].Value.Uint64()
	if live < gcHeadroom || goal-live < gcHeadroom {
		t.Errorf("live %d, goal %d: want at least %d of room for garbage", live, goal, gcHeadroom)
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
