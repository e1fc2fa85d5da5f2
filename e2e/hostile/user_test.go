package hostile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// browser is one user agent: a cookie jar and a client that does not
// follow redirects by itself.
type browser struct {
	public string
	jar    *cookiejar.Jar
	c      *http.Client
}

func (s *stack) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{public: s.public, jar: jar, c: &http.Client{
		Jar:           jar,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// get sends GET path (on the gateway unless absolute) with X-CSRF: 1 and
// returns the status, the Location and up to 64 KiB of the body.
func (b *browser) get(path string) (int, string, string, error) {
	u := path
	if strings.HasPrefix(path, "/") {
		u = b.public + path
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("X-CSRF", "1")
	res, err := b.c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(body), nil
}

// login signs in through the test OP: /bff/login, the OP's authorize
// (approved at once), /bff/callback, then the returnUrl.
func (b *browser) login(returnURL string) error {
	next := "/bff/login?returnUrl=" + url.QueryEscape(returnURL)
	for step := range 3 {
		code, loc, body, err := b.get(next)
		if err != nil {
			return fmt.Errorf("login step %d: %w", step, err)
		}
		if code != http.StatusFound {
			return fmt.Errorf("login step %d: GET %s: %d %s", step, next, code, body)
		}
		if step == 2 {
			if loc != returnURL {
				return fmt.Errorf("login: callback redirected to %q, want %q", loc, returnURL)
			}
			return nil
		}
		next = loc
	}
	return nil
}

// user returns /bff/user's answer.
func (b *browser) user() (int, map[string]any, error) {
	code, _, body, err := b.get("/bff/user")
	if err != nil || code != http.StatusOK {
		return code, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		return code, nil, fmt.Errorf("/bff/user: %w", err)
	}
	return code, out, nil
}

// cookieHeader is the Cookie header the jar sends to path on the gateway.
func (b *browser) cookieHeader(path string) string {
	u, _ := url.Parse(b.public + path)
	var parts []string
	for _, c := range b.jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// raw sends head (a request line and headers, without the blank line)
// and body over a new connection to addr, exactly as given, and returns
// the response's status. The body is written while the response is read,
// so a server that answers before reading it all is seen answering.
func raw(addr, head string, body io.Reader) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, head+"\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	if body != nil {
		// Write errors (the server closed after answering) are expected.
		go func() { _, _ = io.Copy(conn, body) }()
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, nil
}

// errStatus is an unexpected answer.
func errStatus(what string, got int, want ...int) error {
	return fmt.Errorf("%s: status %d, want %v", what, got, want)
}
