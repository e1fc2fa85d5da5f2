package bff

import (
	"strings"
	"unicode/utf8"

	"github.com/medama-io/go-useragent"

	"github.com/bffgate/bffgate/session"
)

// maxUserAgentBytes bounds the User-Agent read for a session's browser
// description; the browser's own token comes well before it.
const maxUserAgentBytes = 512

// browsers turns a User-Agent into the short description a user's
// session list shows ("Firefox 128 on Linux"), with medama-io's
// go-useragent (a trie built once).
type browsers struct{ parser *useragent.Parser }

func newBrowsers() *browsers { return &browsers{parser: useragent.NewParser()} }

// describe returns the description of ua, at most session.MaxBrowserLen
// bytes of valid UTF-8: browser and major version, operating system,
// and the device unless a desktop. An unknown User-Agent gives
// "Unknown browser", with the system if that is known.
func (b *browsers) describe(ua string) string {
	ua = strings.ToValidUTF8(truncate(ua, maxUserAgentBytes), "")
	a := b.parser.Parse(ua)
	name := string(a.Browser())
	if name == "" {
		name = "Unknown browser"
		if a.IsBot() {
			name = "Bot"
		}
	} else if v := a.BrowserVersionMajor(); v != "" {
		name += " " + v
	}
	if os := string(a.OS()); os != "" {
		name += " on " + os
	}
	if d := string(a.Device()); d != "" && d != "Desktop" {
		name += " (" + strings.ToLower(d) + ")"
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
