package bff

import (
	"net"
	"testing"
	"time"
)

// TestHangupsUnwatchWhileFiring: the last stream is unwatched (which
// closes the epoll instance) while the watcher is handling that stream's
// hang-up. Closing the instance under the lock the watcher's callback
// takes, while the callback holds the instance, deadlocked the gateway's
// shutdown (seen in TestSlowBodiesAreClosed).
func TestHangupsUnwatchWhileFiring(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var h hangups
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			server, err := ln.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			token, ok := h.watch(server, func() {})
			if !ok {
				t.Error("watch refused a TCP connection")
				return
			}
			client.Close()   // the peer hangs up: the watcher fires …
			h.unwatch(token) // … while the stream is ended here
			server.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("watch/unwatch deadlocked with the watcher")
	}
}
