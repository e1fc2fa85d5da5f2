package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/bffgate/bffgate/internal/proctest"
)

// actionTimeout bounds every browser step, so that a hang fails fast (with a
// screenshot) instead of running into go test's timeout.
const actionTimeout = 15 * time.Second

// browserFlags are the only flags Chromium gets besides --user-data-dir
// (chromedp itself adds --remote-debugging-pipe and the first page,
// about:blank). The list is built here on purpose, not from
// chromedp.DefaultExecAllocatorOptions, so that nothing re-enables
// background traffic to hosts outside the test.
var browserFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("headless", true),
	chromedp.Flag("no-sandbox", true),
	chromedp.Flag("disable-gpu", true),
	chromedp.Flag("disable-quic", true),
	chromedp.NoFirstRun,
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.NoDefaultBrowserCheck,
}

// browser is one Chromium process with its own, fresh profile.
type browser struct {
	t   *testing.T
	ctx context.Context // the browser's first tab

	mu   sync.Mutex
	tabs []*tab
}

// tab is one page of a browser. Its methods fail the test on error, after a
// screenshot to e2e/.artifacts/<test>.png.
type tab struct {
	t    *testing.T
	b    *browser
	name string
	ctx  context.Context
}

// newBrowser starts Chromium for t with a fresh --user-data-dir; it is
// closed when the test ends (and its leftover processes killed).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	requirePrereqs(t)
	dataDir := t.TempDir()
	out, err := newLogBuffer(filepath.Join(artifactDir(t), "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]chromedp.ExecAllocatorOption{chromedp.ExecPath(chromiumPath)}, browserFlags...)
	opts = append(opts, chromedp.UserDataDir(dataDir), chromedp.CombinedOutput(out))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp's own messages go to chromium.log, not t.Logf: they can come
	// after the test has ended.
	logf := func(format string, args ...any) { fmt.Fprintf(out, "chromedp: "+format+"\n", args...) }
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshots()
		}
		cancel()
		cancelAlloc()
		killUsing(dataDir)
		out.file.Close()
	})
	// The first Do starts the browser and binds it to the context it gets, so
	// it must get ctx itself, not a context with a timeout: a timer cancels
	// ctx instead if the start hangs.
	timer := time.AfterFunc(30*time.Second, cancel)
	err = chromedp.Do(ctx)
	timer.Stop()
	if err != nil {
		t.Fatalf("start chromium: %v\n%s", err, proctest.Tail(out.String(), 30))
	}
	return b
}

// killUsing kills what is left of a Chromium that used dir as its profile,
// so that t.TempDir can remove it.
func killUsing(dir string) {
	want := []byte("--user-data-dir=" + dir)
	for range 20 {
		found := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
				if bytes.Equal(arg, want) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					found++
					break
				}
			}
		}
		if found == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newTab returns the browser's first tab on its first call, then new tabs
// (all in the same profile, so they share cookies).
func (b *browser) newTab() *tab {
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx := b.ctx
	if len(b.tabs) > 0 {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(b.ctx)
		b.t.Cleanup(cancel)
		// Open the tab now, with its own context: the first Run on a
		// chromedp context binds the tab to the context of that call, and
		// the steps run under a timeout (tab.do), whose end would leave
		// the tab unable to answer any later step.
		timer := time.AfterFunc(actionTimeout, cancel)
		err := chromedp.Do(ctx)
		timer.Stop()
		if err != nil {
			b.t.Fatalf("open a new tab: %v", err)
		}
	}
	tb := &tab{t: b.t, b: b, name: fmt.Sprintf("tab%d", len(b.tabs)+1), ctx: ctx}
	b.tabs = append(b.tabs, tb)
	return tb
}

// screenshots saves a screenshot of every tab, and its URL, to
// e2e/.artifacts/<test>[-tabN].png.
func (b *browser) screenshots() {
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	for i, tb := range tabs {
		name := safeName(b.t.Name())
		if i > 0 {
			name += "-" + tb.name
		}
		tb.screenshot(filepath.Join(artifactsDir, name+".png"))
	}
}

func (tb *tab) screenshot(path string) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		tb.t.Logf("%s: screenshot failed: %v (at %s)", tb.name, err, loc)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Logf("%s: screenshot: %v", tb.name, err)
		return
	}
	tb.t.Logf("%s: screenshot of %s saved to %s", tb.name, loc, path)
}

// fail ends the test with what and err, plus the tab's URL.
func (tb *tab) fail(what string, err error) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	loc, lerr := chromedp.Run(ctx, chromedp.Location())
	if lerr != nil {
		loc = "(unknown: " + lerr.Error() + ")"
	}
	tb.t.Fatalf("%s: %s: %v\n(the page is at %s)", tb.name, what, err, loc)
}

// do runs steps under actionTimeout; what names them in the failure.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.fail(what, err)
	}
}

// runTab runs one action with a result under actionTimeout.
func runTab[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.fail(what, err)
	}
	return v
}

// navigate loads u and waits for its load event.
func (tb *tab) navigate(u string) {
	tb.t.Helper()
	tb.do("navigate to "+u, chromedp.Navigate(u))
}

// waitVisible waits until the CSS selector sel is visible.
func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// click clicks the CSS selector sel once it is visible.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// text is the visible text of the CSS selector sel.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(runTab(tb, "text of "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// eval evaluates a JavaScript expression (promises are awaited) in the page
// and returns its JSON value.
func (tb *tab) eval(what, expr string) []byte {
	tb.t.Helper()
	return runTab(tb, what, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
}

// waitJS evaluates the JavaScript expression every 50 ms until it is true.
// Errors while the page navigates (its JavaScript context goes away) only
// mean "not yet".
func (tb *tab) waitJS(what, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("timed out")
			}
			tb.fail(what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitURL waits until the tab's URL satisfies ok (checked every 50 ms).
func (tb *tab) waitURL(what string, ok func(*url.URL) bool) *url.URL {
	tb.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		cancel()
		if err == nil {
			last = loc
			if u, perr := url.Parse(loc); perr == nil && ok(u) {
				return u
			}
		}
		if time.Now().After(deadline) {
			tb.fail(what, fmt.Errorf("timed out; last URL %q (err %v)", last, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fetchResult is what fetchJS returns from the page.
type fetchResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"` // the exception's name and message, when fetch threw
}

// fetch runs fetch(path, {headers: {'X-CSRF': '1'}}) from the page, with
// the page's cookies, and returns the status and body.
func (tb *tab) fetch(path string) fetchResult {
	tb.t.Helper()
	return tb.fetchJS(fmt.Sprintf(`fetch(%q, {headers: {'X-CSRF': '1'}, cache: 'no-store'})`, path))
}

// fetchJS evaluates a JavaScript expression that yields a fetch promise.
func (tb *tab) fetchJS(fetchExpr string) fetchResult {
	tb.t.Helper()
	raw := tb.eval("fetch", `(async () => {
  try {
    const res = await `+fetchExpr+`;
    return {status: res.status, body: await res.text()};
  } catch (e) {
    return {status: 0, error: e.name + ': ' + e.message};
  }
})()`)
	var r fetchResult
	if err := json.Unmarshal(raw, &r); err != nil {
		tb.t.Fatalf("fetch result %s: %v", raw, err)
	}
	return r
}

// ---------------------------------------------------------------- the app

// openApp loads the SPA at appURL and waits until it knows whether the user
// is signed in; it returns the state ("signed-in" or "signed-out").
func (tb *tab) openApp(appURL string) string {
	tb.t.Helper()
	tb.navigate(appURL)
	return tb.appState()
}

// appState waits for #status to leave "loading" and returns its data-state.
func (tb *tab) appState() string {
	tb.t.Helper()
	tb.waitJS("wait for the SPA's #status",
		`(() => { const s = document.querySelector('#status'); return !!s && s.dataset.state !== 'loading'; })()`)
	var st string
	if err := json.Unmarshal(tb.eval("#status", `document.querySelector('#status').dataset.state`), &st); err != nil {
		tb.t.Fatal(err)
	}
	return st
}

// waitAppState waits until #status has data-state=state.
func (tb *tab) waitAppState(state string) {
	tb.t.Helper()
	tb.waitJS("wait for #status[data-state="+state+"]",
		fmt.Sprintf(`(() => { const s = document.querySelector('#status'); return !!s && s.dataset.state === %q; })()`, state))
}

// signIn fills in and submits the IdP's login page, which must be showing.
func (tb *tab) signIn(user, password string) {
	tb.t.Helper()
	tb.do("sign in at the IdP as "+user,
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#login"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#submit")),
	)
}

// loginToApp opens the SPA at appURL (e.g. gw+"/"), clicks #login, signs in
// at the IdP (unless sso: then no login page may appear) and waits until
// the SPA shows the user. It checks that #user-sub is the user.
func (tb *tab) loginToApp(appURL, user, password string, sso bool) {
	tb.t.Helper()
	if st := tb.openApp(appURL); st != "signed-out" {
		tb.fail("open "+appURL, fmt.Errorf("#status is %q before login, want signed-out", st))
	}
	tb.click("#login")
	if !sso {
		tb.signIn(user, password)
	}
	app, _ := url.Parse(appURL)
	tb.waitURL("back on the app after login", func(u *url.URL) bool {
		return u.Host == app.Host && strings.HasPrefix(u.Path, app.Path) && !strings.Contains(u.Path, "/bff/")
	})
	tb.waitAppState("signed-in")
	tb.waitVisible("#user")
	if sub := tb.text("#user-sub"); sub != user {
		tb.fail("after login", fmt.Errorf("#user-sub is %q, want %q", sub, user))
	}
}

// ---------------------------------------------------------------- network

// netRecorder keeps the URLs of a tab's requests and of its responses (with
// their status and resource type), as the DevTools protocol reports them.
// Redirect hops count as requests, so it sees e.g. the IdP's redirect to
// /bff/callback with its query.
type netRecorder struct {
	mu        sync.Mutex
	requests  []string
	responses []netResponse
}

type netResponse struct {
	URL    string
	Status int64
	Type   network.ResourceType
}

// recordNetwork starts recording the tab's network traffic (from now on).
func (tb *tab) recordNetwork() *netRecorder {
	tb.t.Helper()
	r := &netRecorder{}
	err := chromedp.Listen(tb.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			r.mu.Lock()
			r.requests = append(r.requests, ev.Request.URL)
			r.mu.Unlock()
		case *network.EventResponseReceived:
			r.mu.Lock()
			r.responses = append(r.responses, netResponse{URL: ev.Response.URL, Status: ev.Response.Status, Type: ev.Type})
			r.mu.Unlock()
		}
	})
	if err != nil {
		tb.t.Fatalf("%s: listen to the network: %v", tb.name, err)
	}
	return r
}

// requestsTo returns the recorded request URLs whose path is path.
func (r *netRecorder) requestsTo(path string) []*url.URL {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*url.URL
	for _, raw := range r.requests {
		if u, err := url.Parse(raw); err == nil && u.Path == path {
			out = append(out, u)
		}
	}
	return out
}

// waitEventStream waits until the tab's page has an open /bff/events
// stream (an EventSource response 200 under prefix).
func (tb *tab) waitEventStream(r *netRecorder, prefix string) {
	tb.t.Helper()
	err := eventually(actionTimeout, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, res := range r.responses {
			u, err := url.Parse(res.URL)
			if err == nil && u.Path == prefix+"bff/events" && res.Status == 200 && res.Type == network.ResourceTypeEventSource {
				return nil
			}
		}
		return errors.New("no open EventSource on " + prefix + "bff/events")
	})
	if err != nil {
		tb.fail("wait for the SPA's event stream", err)
	}
}

// cookie returns the browser's cookie named name for URL u, or nil.
func (tb *tab) cookie(u, name string) *network.Cookie {
	tb.t.Helper()
	cookies := runTab(tb, "cookies of "+u, func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
		return res.Cookies, err
	})
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// confirmIdPSignOut clicks "Yes" on the IdP's sign-out page, once it
// shows, and returns the browser's clock (Unix ms, shared by its tabs)
// at the click.
func (tb *tab) confirmIdPSignOut() int64 {
	tb.t.Helper()
	tb.waitVisible("#logout-yes")
	var at int64
	if err := json.Unmarshal(tb.eval("confirm at the IdP",
		`(() => { const t = Date.now(); document.querySelector('#logout-yes').click(); return t; })()`), &at); err != nil {
		tb.t.Fatal(err)
	}
	return at
}
