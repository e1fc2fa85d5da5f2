package bff

import (
	"runtime"
	"testing"
)

// TestBrowserDescriptions: the session list's short description of common
// User-Agents.
func TestBrowserDescriptions(t *testing.T) {
	b := newBrowsers()
	for _, tc := range []struct{ ua, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox 128 on Linux"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge 131 on Windows"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari 17 on iOS (mobile)"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari 17 on macOS"},
		{"", "Unknown browser"},
		{"curl/8.5.0", "curl 8"},
	} {
		if got := b.describe(tc.ua); got != tc.want {
			t.Errorf("describe(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}

// TestBrowsersHeap: the parser lives as long as the gateway and every GC
// scans what it holds; medama-io/go-useragent's trie kept about 5 MB of pointers
// alive (GC from 7 % to 18 % of the hot path's CPU). The bound is 256 KiB.
func TestBrowsersHeap(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b := newBrowsers()
	_ = b.describe("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(b)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 256<<10 {
		t.Errorf("the User-Agent parser keeps %d KiB of heap alive, want ≤ 256 KiB", grew>>10)
	}
}
