package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// testTLS serves the API over HTTPS with a certificate from a CA made for
// the test: a client trusting that CA gets answers (and a same-origin
// https:// Origin passes the browser guard), plain HTTP and a client
// trusting another CA get none, and a renewed certificate is served
// without a restart.
func testTLS(t *testing.T, c *client) {
	ca := testkit.NewCA(t)
	leaf := ca.Issue(t, "api", "127.0.0.1", "localhost")
	srv, err := New(Config{Addr: "127.0.0.1:0", TLSCertFile: leaf.CertFile, TLSKeyFile: leaf.KeyFile}, c.store, c.f.js, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := srv.Listen(ctx); err != nil {
		t.Fatalf("listen with TLS: %v", err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	base := "https://" + srv.Addr().String()

	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	get := func(cl *http.Client, url string, origin string) (int, string, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := get(trusting, base+"/api/v1/whoami", ""); err != nil || code != 200 || !strings.Contains(body, "test-admin") {
		t.Fatalf("whoami over TLS = %d %s (%v)", code, body, err)
	}
	if code, body, err := get(trusting, base+"/api/v1/whoami", base); err != nil || code != 200 {
		t.Fatalf("same-origin https request = %d %s (%v), want 200", code, body, err)
	}
	if code, _, err := get(trusting, base+"/api/v1/whoami", "http://"+srv.Addr().String()); err != nil || code != 403 {
		t.Fatalf("http:// origin on an https API = %d (%v), want 403", code, err)
	}

	plain := &http.Client{Timeout: 10 * time.Second}
	if code, body, err := get(plain, "http://"+srv.Addr().String()+"/api/v1/whoami", ""); err == nil && code == 200 {
		t.Fatalf("plain HTTP answered 200: %s", body)
	}
	other := testkit.NewCA(t)
	distrusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: other.Pool()}}}
	var unknown x509.UnknownAuthorityError
	if _, _, err := get(distrusting, base+"/api/v1/health", ""); !errors.As(err, &unknown) {
		t.Fatalf("client trusting another CA: err = %v, want an unknown authority", err)
	}

	// Renewal: new files in place; the next handshakes serve them.
	renewed := ca.Issue(t, "api-renewed", "127.0.0.1", "localhost")
	later := time.Now().Add(time.Minute)
	for _, f := range []struct{ src, dst string }{{renewed.CertFile, leaf.CertFile}, {renewed.KeyFile, leaf.KeyFile}} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.dst, later, later); err != nil {
			t.Fatal(err)
		}
	}
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := fresh.Get(base + "/api/v1/health")
		if err == nil {
			resp.Body.Close()
			if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn == "api-renewed" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed certificate not served after 15s (last error %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Files that do not load fail Listen with their names.
	bad, err := New(Config{Addr: "127.0.0.1:0", TLSCertFile: leaf.CertFile, TLSKeyFile: ca.CertFile}, c.store, c.f.js, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Listen(ctx); err == nil || !strings.Contains(err.Error(), ca.CertFile) {
		t.Fatalf("listen with a certificate as key: err = %v, want one naming %s", err, ca.CertFile)
	}
}
