package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestBrowserSafety sends what a web page can send: a text/plain POST
// (CSRF), a foreign Origin, a DNS-rebound Host on a loopback listener. Each
// is refused and nothing is created; an allowed origin gets CORS headers.
func TestBrowserSafety(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	c := newClient(t, &fixture{pg: pg, js: js}, js, nil)
	c.srv.cfg.AllowedOrigins = []string{"https://console.example.com"}
	if err := c.srv.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.srv.Shutdown(context.Background()) })
	base := "http://" + c.srv.Addr().String()
	body := `{"name":"d","type":"duckdb","config":{"path":"x.duckdb"}}`
	send := func(ct, origin, host string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/api/v1/destinations", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if host != "" {
			req.Host = host
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		name, ct, origin, host string
		want                   int
	}{
		{"text/plain", "text/plain", "", "", 415},
		{"form", "application/x-www-form-urlencoded", "", "", 415},
		{"no content type", "", "", "", 415},
		{"foreign origin", "application/json", "https://evil.example", "", 403},
		{"rebound host", "application/json", "", "evil.example:80", 403},
	} {
		if resp := send(tc.ct, tc.origin, tc.host); resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if _, n, err := c.store.ListDestinations(context.Background(), configstore.Page{}); err != nil || n != 0 {
		t.Fatalf("refused requests created %d destinations (%v)", n, err)
	}
	resp := send("application/json", "https://console.example.com", "")
	if resp.StatusCode != 201 || resp.Header.Get("Access-Control-Allow-Origin") != "https://console.example.com" {
		t.Fatalf("allowed origin: %d, ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// Same origin (the console served by this API) and no Origin pass,
	// without CORS headers.
	req, _ := http.NewRequest("GET", base+"/api/v1/whoami", nil)
	req.Header.Set("Origin", base)
	req.Header.Set("Authorization", "Bearer "+c.token)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 || r2.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("same origin: %d ACAO %q", r2.StatusCode, r2.Header.Get("Access-Control-Allow-Origin"))
	}
}
