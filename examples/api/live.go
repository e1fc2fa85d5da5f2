package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// handleEcho is GET /api/ws: a WebSocket that echoes every message, for
// the demo of a sign-out cutting the session's live connections (the
// gateway closes it with 1008 "session ended").
func handleEcho(logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Behind the gateway the browser's Origin is the gateway's
		// public origin while the Host is this API's: the gateway has
		// checked the Origin already (the app's own only).
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				logger.Info("websocket closed", "status", int(websocket.CloseStatus(err)))
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	}
}

// handleTicks is GET /api/ticks: a response that streams a line a second
// (for up to an hour) until the client goes or the gateway cuts it.
func handleTicks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := range 3600 {
		if _, err := fmt.Fprintf(w, "data: tick %d\n\n", i); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}
