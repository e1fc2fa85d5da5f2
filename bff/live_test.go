package bff

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/proxy"
	"github.com/bffgate/bffgate/session"
)

// wsHarness is the harness with a WebSocket echo API under /ws/.
func wsHarness(t *testing.T) *harness {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The browser's Origin is the gateway's, the Host the upstream's.
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{"*"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if c.Write(r.Context(), typ, msg) != nil {
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	return newHarness(t, harnessOpts{mutate: func(a *AppConfig) {
		a.APIs = append(a.APIs, APIConfig{Path: "/ws/", Upstream: up.URL})
	}})
}

// dialWS opens a WebSocket to /ws/echo as the browser c, with origin.
func (h *harness) dialWS(c *http.Client, origin string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	u := "ws" + strings.TrimPrefix(h.srv.URL, "http") + "/ws/echo"
	return websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c, HTTPHeader: hdr})
}

func TestWebSocketCutOnBackchannelLogout(t *testing.T) {
	h := wsHarness(t)
	c := h.login("/")
	ws, resp, err := h.dialWS(c, h.srv.URL)
	if err != nil {
		t.Fatalf("dial: %v %s", err, errBody(resp))
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "hi" {
		t.Fatalf("echo = %q, %v", msg, err)
	}

	if resp := h.backchannel(h.logoutToken(nil, testop.SignOpts{})); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout: %d", resp.StatusCode)
	}
	cutCtx, cutCancel := context.WithTimeout(context.Background(), time.Second)
	defer cutCancel()
	_, _, err = ws.Read(cutCtx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != proxy.CloseSessionEnded || ce.Reason != "session ended" {
		t.Fatalf("after the logout: %v, want close 1008 \"session ended\" within 1s", err)
	}
}

func TestWebSocketNeedsAppOrigin(t *testing.T) {
	h := wsHarness(t)
	c := h.login("/")
	for _, origin := range []string{"", "http://evil.example", strings.Replace(h.srv.URL, "http:", "https:", 1)} {
		ws, resp, err := h.dialWS(c, origin)
		if err == nil {
			ws.CloseNow()
			t.Errorf("origin %q: the socket opened, want 403", origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v, want 403", origin, err)
		}
	}
}

func errBody(resp *http.Response) string {
	if resp == nil || resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestStreamAbortedOnSessionEnd: an API response still streaming through
// the gateway (Echo, its middleware, a real server) is aborted when its
// session ends: the client's read fails, it never sees a clean end.
func TestStreamAbortedOnSessionEnd(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for {
			if _, err := io.WriteString(w, "data: tick\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) {
		a.APIs = append(a.APIs, APIConfig{Path: "/stream/", Upstream: up.URL})
	}})
	c := h.login("/")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/stream/ticks", nil)
	req.Header.Set("X-CSRF", "1")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 64)
	if _, err := res.Body.Read(buf); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("first chunk: %d %v", res.StatusCode, err)
	}
	if _, err := h.mgr.End(context.Background(), h.sessionOf(c).ID, session.CauseAdmin); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, res.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the stream ended cleanly, want it aborted")
		}
	case <-time.After(time.Second):
		t.Fatal("the stream still flows 1s after its session ended")
	}
}

// TestWebSocketGoingAwayAtShutdown: CloseStreams, which the shutdown
// calls, closes the proxied sockets with 1001 (reconnect), since the HTTP
// drain does not see them.
func TestWebSocketGoingAwayAtShutdown(t *testing.T) {
	h := wsHarness(t)
	c := h.login("/")
	ws, resp, err := h.dialWS(c, h.srv.URL)
	if err != nil {
		t.Fatalf("dial: %v %s", err, errBody(resp))
	}
	defer ws.CloseNow()
	h.gw.CloseStreams()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _, err = ws.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Fatalf("after CloseStreams: %v, want close 1001", err)
	}
}
