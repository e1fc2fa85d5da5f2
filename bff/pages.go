package bff

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// pageData feeds the gateway's HTML pages. Every value is escaped by
// html/template.
type pageData struct {
	Title     string
	Message   string
	RequestID string
	Link      string
	LinkText  string
	Nonce     string
	// Iframes are downstream front-channel logout URLs to load.
	Iframes []string
	// Continue is where the page goes once the iframes have loaded.
	Continue string
	WaitMS   int
	// Check-session page.
	Origin, ClientID, UserURL string
}

// pageHeaders are the security headers on every page the gateway renders.
// frameAncestors is the CSP frame-ancestors source list ("'none'" when
// the page must not be framed).
func pageHeaders(h http.Header, nonce, frameAncestors string) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'; frame-src *; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors "+frameAncestors)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if frameAncestors == "'none'" {
		h.Set("X-Frame-Options", "DENY")
	}
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawStdEncoding.EncodeToString(b[:])
}

// pages writes the gateway's HTML pages and its error answers
// (handleError); it logs a page that fails to render.
type pages struct {
	logger *slog.Logger
}

// renderPage writes an error page (not frameable).
func (p pages) renderPage(c echo.Context, code int, d pageData) {
	p.render(c, code, "error.html", d, "'none'")
}

// render executes a template with a fresh CSP nonce and the security
// headers, and writes it with the status code.
func (p pages) render(c echo.Context, code int, name string, d pageData, frameAncestors string) {
	d.Nonce = newNonce()
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, d); err != nil {
		p.logger.Error("render page", "template", name, "err", err)
		buf.Reset()
		buf.WriteString("<!doctype html><title>Error</title><p>Internal error</p>")
		code = http.StatusInternalServerError
	}
	h := c.Response().Header()
	pageHeaders(h, d.Nonce, frameAncestors)
	_ = c.HTMLBlob(code, buf.Bytes())
}

// origin returns the origin (scheme://host[:port]) of an absolute URL,
// or "" if raw is not one.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}
