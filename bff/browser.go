package bff

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mileusna/useragent"

	"github.com/bffgate/bffgate/session"
)

// maxUserAgentBytes bounds the User-Agent read for a session's browser
// description; the browser's own token comes well before it.
const maxUserAgentBytes = 512

// browsers turns a User-Agent into the short description a user's
// session list shows ("Firefox 128 on Linux"), with mileusna/useragent: a
// tokenizer that keeps nothing between calls (medama-io/go-useragent's trie kept
// about 5 MB of pointers alive for the life of the process, which every GC
// scanned: TestBrowsersHeap).
type browsers struct{}

func newBrowsers() *browsers { return &browsers{} }

// describe returns the description of ua, at most session.MaxBrowserLen
// bytes of valid UTF-8: browser and major version, operating system, and
// "mobile" or "tablet" when it is one. An unknown User-Agent gives
// "Unknown browser", with the system if that is known.
func (*browsers) describe(ua string) string {
	ua = strings.ToValidUTF8(truncate(ua, maxUserAgentBytes), "")
	a := useragent.Parse(ua)
	name := a.Name
	switch {
	case name == "":
		name = "Unknown browser"
	case a.VersionNo.Major > 0:
		name += " " + strconv.Itoa(a.VersionNo.Major)
	}
	if a.OS != "" {
		name += " on " + a.OS
	}
	switch {
	case a.Tablet:
		name += " (tablet)"
	case a.Mobile:
		name += " (mobile)"
	}
	return truncateUTF8(name, session.MaxBrowserLen)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
