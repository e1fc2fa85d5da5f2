package proxy

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"
)

// rewrite turns the inbound request into the upstream request.
// httputil.ReverseProxy has already removed hop-by-hop headers and the
// inbound X-Forwarded-* headers.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	if p.cfg.StripPrefix != "" {
		stripPrefix(pr.Out, p.cfg.StripPrefix)
	}
	pr.SetURL(p.cfg.Target)
	p.setForwarded(pr)
	h := pr.Out.Header
	// The client cannot pick the upstream's view of its identity: its own
	// Authorization never passes, and Forwarded is replaced by the
	// X-Forwarded-* headers set above.
	if p.cfg.Token == TokenNone {
		h.Del("Authorization") // the other kinds: ServeSession set or removed it
	}
	h.Del("Forwarded")
	p.filterCookies(h)
	if p.cfg.Propagate {
		propagate(pr.Out.Context(), h)
	}
}

// setForwarded sets the X-Forwarded-* headers of pr.Out as
// ProxyRequest.SetXForwarded does, with the gateway's changes: the host
// is the public one (ForwardedHost) rather than the client's Host, and
// with TrustForwarded the chain, host and https proto a trusted proxy
// sent are kept. The three values share one allocation.
// httputil.ReverseProxy has removed the inbound ones from pr.Out.
func (p *Proxy) setForwarded(pr *httputil.ProxyRequest) {
	in, h := pr.In, pr.Out.Header
	trust := p.cfg.TrustForwarded
	v := new([3]string)
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		v[0] = ip
		if trust {
			// The caller vouches for these: it removed them from untrusted peers.
			if xff := forwardedFor(in.Header.Values("X-Forwarded-For")); xff != "" {
				v[0] = xff + ", " + ip
			}
		}
		h["X-Forwarded-For"] = v[0:1:1]
	}
	v[1] = p.cfg.ForwardedHost
	if trust {
		if fh := in.Header.Get("X-Forwarded-Host"); fh != "" {
			v[1] = fh
		}
	}
	if v[1] == "" {
		v[1] = in.Host
	}
	h["X-Forwarded-Host"] = v[1:2:2]
	v[2] = "http"
	if in.TLS != nil || trust && in.Header.Get("X-Forwarded-Proto") == "https" {
		v[2] = "https"
	}
	h["X-Forwarded-Proto"] = v[2:3:3]
}

// forwardedFor joins the elements of the X-Forwarded-For lines, trimmed
// and without empty ones, into one chain: an empty line or a stray comma
// must not become an empty hop. A single well-formed line is returned as
// it is.
func forwardedFor(lines []string) string {
	if len(lines) == 1 && canonicalChain(lines[0]) {
		return lines[0]
	}
	var b strings.Builder
	for _, line := range lines {
		for hop := range strings.SplitSeq(line, ",") {
			if hop = textproto.TrimString(hop); hop == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(hop)
		}
	}
	return b.String()
}

// canonicalChain reports whether line is "a, b, c": non-empty hops
// without surrounding spaces, separated by ", ".
func canonicalChain(line string) bool {
	for hop := range strings.SplitSeq(line, ", ") {
		if hop == "" || strings.ContainsAny(hop, ", \t") {
			return false
		}
	}
	return true
}

// stripPrefix removes prefix from the start of r's path, keeping a
// leading slash. A path without the prefix is left alone.
func stripPrefix(r *http.Request, prefix string) {
	u := r.URL
	rest, ok := strings.CutPrefix(u.Path, prefix)
	if !ok {
		return
	}
	if u.RawPath != "" {
		if raw, ok := strings.CutPrefix(u.RawPath, prefix); ok {
			u.RawPath = ensureSlash(raw)
		} else {
			u.RawPath = "" // let EscapedPath recompute it from Path
		}
	}
	u.Path = ensureSlash(rest)
}

func ensureSlash(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/" + p
}

// filterCookies keeps in h's Cookie headers only the cookies the
// upstream's cookie policy passes, merging them into one header, or
// dropping it if none is left.
func (p *Proxy) filterCookies(h http.Header) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	pol, isGateway := p.cfg.Cookies, p.cfg.IsGatewayCookie
	if !pol.All && len(pol.Names) == 0 {
		delete(h, "Cookie")
		return
	}
	if !dropsAny(lines, func(name string) bool { return !pol.keeps(name, isGateway) }) {
		return
	}
	var b strings.Builder
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			part = textproto.TrimString(part)
			if part == "" || !pol.keeps(cookieName(part), isGateway) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if b.Len() == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{b.String()}
}

// dropsAny reports whether drop names any cookie in the Cookie header
// lines; it lets the common case skip rebuilding the header.
func dropsAny(lines []string, drop func(string) bool) bool {
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			if drop(cookieName(part)) {
				return true
			}
		}
	}
	return false
}

// cookieName returns the name in a "name=value" pair of a Cookie or
// Set-Cookie header.
func cookieName(pair string) string {
	name, _, _ := strings.Cut(pair, "=")
	return textproto.TrimString(name)
}

// modifyResponse drops Set-Cookie headers by which the upstream would
// overwrite (or fixate) the gateway's own cookies.
func (p *Proxy) modifyResponse(res *http.Response) error {
	lines := res.Header["Set-Cookie"]
	if len(lines) == 0 {
		return nil
	}
	kept := lines[:0]
	for _, line := range lines {
		if p.cfg.IsGatewayCookie(cookieName(line)) {
			p.logger.WarnContext(res.Request.Context(), "dropped a Set-Cookie for a gateway cookie from the upstream")
			continue
		}
		kept = append(kept, line)
	}
	if len(kept) == 0 {
		delete(res.Header, "Set-Cookie")
		return nil
	}
	res.Header["Set-Cookie"] = kept
	return nil
}
