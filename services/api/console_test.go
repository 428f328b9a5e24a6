package api

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gofiber/fiber/v2"
)

func TestConsoleHandler(t *testing.T) {
	built := fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html><div id=root></div>")},
		"assets/index-abc.js": {Data: []byte("console.log(1)")},
		"robots.txt":          {Data: []byte("User-agent: *")},
	}
	newApp := func(files fstest.MapFS, isBuilt bool) *fiber.App {
		app := fiber.New()
		h := consoleHandler(files, isBuilt)
		app.Get("/api/v1/health", func(c *fiber.Ctx) error { return c.SendString("api") })
		app.Get("/*", h)
		app.Get("/metrics", func(c *fiber.Ctx) error { return c.SendString("metrics") })
		return app
	}
	tests := []struct {
		name       string
		files      fstest.MapFS
		built      bool
		path       string
		status     int
		body       string
		cache      string
		typePrefix string
	}{
		{"index at root", built, true, "/", 200, "<div id=root>", "no-cache", "text/html"},
		{"console route gets index", built, true, "/pipelines/3", 200, "<div id=root>", "no-cache", "text/html"},
		{"hashed asset cached for good", built, true, "/assets/index-abc.js", 200, "console.log", "public, max-age=31536000, immutable", "text/javascript"},
		{"other file", built, true, "/robots.txt", 200, "User-agent", "no-cache", "text/plain"},
		{"missing asset is 404", built, true, "/assets/old-123.js", 404, "not found", "", ""},
		{"missing file with extension is 404", built, true, "/favicon.ico", 404, "not found", "", ""},
		{"path escaping the root gets the index, not the file", built, true, "/../../etc/passwd", 200, "<div id=root>", "no-cache", "text/html"},
		{"api route untouched", built, true, "/api/v1/health", 200, "api", "", ""},
		{"unknown api route not the console", built, true, "/api/v1/nope", 404, "Cannot GET", "", ""},
		{"metrics registered later still served", built, true, "/metrics", 200, "metrics", "", ""},
		{"not built says how to build", fstest.MapFS{}, false, "/", 404, "make build", "no-store", "text/html"},
		{"not built on a console route", fstest.MapFS{}, false, "/sources", 404, "make build", "no-store", "text/html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newApp(tt.files, tt.built)
			resp, err := app.Test(httptest.NewRequest("GET", tt.path, nil))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
				t.Fatalf("GET %s = %d %q, want %d containing %q", tt.path, resp.StatusCode, body, tt.status, tt.body)
			}
			if tt.cache != "" && resp.Header.Get("Cache-Control") != tt.cache {
				t.Errorf("Cache-Control = %q, want %q", resp.Header.Get("Cache-Control"), tt.cache)
			}
			if tt.typePrefix != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.typePrefix) {
				t.Errorf("Content-Type = %q, want %s", resp.Header.Get("Content-Type"), tt.typePrefix)
			}
			if tt.typePrefix == "text/html" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("Content-Security-Policy = %q", resp.Header.Get("Content-Security-Policy"))
			}
		})
	}
}
