package bff

import (
	"net/url"
	"strings"
)

// isLocalPath reports whether p is safe to redirect to: a path on this
// origin. It rejects absolute URLs, scheme-relative "//host" and "/\host"
// (browsers treat "\" as "/"), backslashes anywhere, and control
// characters (browsers strip tabs and newlines, turning "/\t/host" into
// "//host"), and paths longer than maxReturnURLBytes.
func isLocalPath(p string) bool {
	if p == "" || p[0] != '/' || len(p) > maxReturnURLBytes {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	if strings.HasPrefix(p, "//") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}

// localPathOr returns p if it is a local path, else def.
func localPathOr(p, def string) string {
	if isLocalPath(p) {
		return p
	}
	return def
}
