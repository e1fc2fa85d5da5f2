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
