package bff

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

// park takes an HTTP/1.1 event stream over from net/http and hands it to
// the broker, so that an open stream costs its connection and a broker
// entry, not a goroutine with bufio buffers. It writes the response head
// itself: every header set so far (the middleware's and the stream's),
// Connection: close, and a body delimited by the close (no chunking);
// then the first event. It returns false, having written nothing, where
// the connection cannot be taken over (HTTP/2, a ResponseWriter without
// Hijack): the caller then serves the stream on its goroutine.
func (e *eventStreams) park(c echo.Context, st *stream, id, user string) bool {
	r, w := c.Request(), c.Response()
	if r.ProtoMajor != 1 {
		return false
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// For the access log and the metrics, which read Echo's response.
	w.Status, w.Committed = http.StatusOK, true

	// The session may have ended between the lookup and the subscription:
	// then say so at once, with the cause if the broker already has it.
	// (The request's context ends with the handler: not used from here.)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), streamWriteTimeout)
	_, err = e.sess.sessions.Get(ctx, id)
	cancel()
	first, gone := connectedEvent, errors.Is(err, session.ErrNotFound)
	if gone {
		cause := causeUnknown
		select {
		case cause = <-st.ended:
		default:
		}
		first = logoutEvent(cause)
	}
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var head strings.Builder
	head.WriteString("HTTP/1.1 200 OK\r\n")
	h.Write(&head)
	head.WriteString("\r\n")
	head.WriteString(first)
	conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err = conn.Write([]byte(head.String()))
	// Bytes after the request (a pipelined one) would go unanswered:
	// close rather than keep them. The bufio reader and writer net/http
	// handed over are dropped here; nothing was written through them.
	if gone || err != nil || rw.Reader.Buffered() > 0 {
		conn.Close()
		e.broker.unsubscribe(id, user, st)
		return true
	}
	e.broker.park(st, id, user, conn)
	return true
}
