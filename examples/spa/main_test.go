package main

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandler: app routes get index.html, files are served (also under an
// app's prefix), and a file that does not exist, /favicon.ico above all,
// is 404, not the app's HTML.
func TestHandler(t *testing.T) {
	root, err := fs.Sub(staticFS, "static")
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(root)
	tests := []struct {
		path     string
		status   int
		wantType string
	}{
		{"/", http.StatusOK, "text/html"},
		{"/some/route", http.StatusOK, "text/html"},
		{"/app.js", http.StatusOK, "javascript"},
		{"/app2/app.js", http.StatusOK, "javascript"},
		{"/favicon.svg", http.StatusOK, "image/svg+xml"},
		{"/favicon.ico", http.StatusNotFound, "text/plain"},
		{"/app2/favicon.ico", http.StatusNotFound, "text/plain"},
		{"/missing.js", http.StatusNotFound, "text/plain"},
		{"/bff/user", http.StatusNotFound, "text/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.status || !strings.Contains(rec.Header().Get("Content-Type"), tt.wantType) {
				t.Errorf("GET %s: %d %q, want %d %s", tt.path, rec.Code, rec.Header().Get("Content-Type"), tt.status, tt.wantType)
			}
		})
	}
}
