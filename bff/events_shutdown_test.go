package bff

import (
	"strings"
	"testing"
	"time"
)

// TestCloseStreamsSaysReconnect: at shutdown an open stream gets a retry
// hint and a "reconnect" event, never "logout", and ends; a stream opened
// afterwards is told the same at once. The session is untouched.
func TestCloseStreamsSaysReconnect(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	_, lines := h.openEvents(c)
	waitLine(t, lines, ": connected", 5*time.Second)

	h.gw.CloseStreams()
	var got []string
	for l := range lines { // ends: the channel closes with the stream
		got = append(got, l)
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "retry: 2000\nevent: reconnect\ndata: {\"retry_ms\":2000}") || strings.Contains(all, "logout") {
		t.Errorf("stream at shutdown:\n%s\nwant a retry hint and a reconnect event, no logout", all)
	}

	_, lines = h.openEvents(c)
	waitLine(t, lines, "event: reconnect", 5*time.Second)
	if resp := h.get(c, "/bff/user", "X-CSRF", "1"); resp.StatusCode != 200 {
		t.Errorf("/bff/user after CloseStreams: %d, want 200 (the session lives on)", resp.StatusCode)
	}
}
