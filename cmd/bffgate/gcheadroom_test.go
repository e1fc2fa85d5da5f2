package main

import (
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
)

// TestGCHeadroom: with the reserve, the collector's heap goal leaves at
// least defaultGCHeadroom of garbage room. Whether the reserve's pages become
// resident is not asserted: fresh pages stay untouched, but the allocator
// zeroes (and so makes resident) pages it reuses, which happened in about
// one fresh test process in four.
func TestGCHeadroom(t *testing.T) {
	if gcReserve != nil {
		t.Fatal("reserved before the test")
	}
	defer func() { gcReserve = nil }()
	runtime.GC()
	if err := reserveGCHeadroom(func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	goal, live := s[0].Value.Uint64(), s[1].Value.Uint64()
	if live < defaultGCHeadroom || goal-live < defaultGCHeadroom {
		t.Errorf("live %d, goal %d: want at least %d of room for garbage", live, goal, defaultGCHeadroom)
	}
	if err := reserveGCHeadroom(func(string) string { return "" }); err != nil || len(gcReserve) != defaultGCHeadroom {
		t.Errorf("second call: %v, %d bytes reserved; want once", err, len(gcReserve))
	}
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

// TestGCHeadroomEnv: BFFGATE_GC_HEADROOM sets the block's size (0: none)
// and a value that is not a size stops the start.
func TestGCHeadroomEnv(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int
	}{
		{"64MiB", 64 << 20},
		{"512KiB", 512 << 10},
		{"1GiB", 1 << 30},
		{"1048576", 1 << 20},
		{"4096B", 4096},
		{"0", 0},
		{"0MiB", 0},
	} {
		gcReserve = nil
		err := reserveGCHeadroom(func(k string) string {
			if k == gcHeadroomEnv {
				return tc.value
			}
			return ""
		})
		if err != nil || len(gcReserve) != tc.want {
			t.Errorf("%s=%s: %v, %d bytes reserved; want %d", gcHeadroomEnv, tc.value, err, len(gcReserve), tc.want)
		}
	}
	for _, bad := range []string{"32M", "-1MiB", "MiB", "1.5GiB", "5GiB", "32 MiB", "lots"} {
		gcReserve = nil
		err := reserveGCHeadroom(func(k string) string {
			if k == gcHeadroomEnv {
				return bad
			}
			return ""
		})
		if err == nil || gcReserve != nil || !strings.Contains(err.Error(), gcHeadroomEnv) {
			t.Errorf("%s=%s: err %v, %d bytes reserved; want an error naming the variable and nothing reserved", gcHeadroomEnv, bad, err, len(gcReserve))
		}
	}
	gcReserve = nil
}
