package snowflake

import (
	"context"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
)

// TestTLS: the fake serves HTTPS with its own CA. A client trusting
// another CA is refused (check and driver alike, blaming tls_ca_file);
// plain HTTP needs insecure_http.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv := startFake(t)
	other := startFake(t) // another CA

	t.Run("wrong CA is refused", func(t *testing.T) {
		raw := fakeConfig(t, srv, map[string]any{"tls_ca_file": writeCA(t, other.CAPEM())})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := Check(ctx, raw)
		var ce *CheckError
		if !errors.As(err, &ce) || ce.Field != "tls_ca_file" || !strings.Contains(err.Error(), "does not trust") {
			t.Fatalf("Check with the wrong CA = %v, want a CheckError blaming tls_ca_file", err)
		}
		d := New(parseTestConfig(t, raw), quietLog())
		defer d.Close()
		it := ev{Table: "tls_items", Columns: itemCols}
		e := &env{t: t, drv: d}
		if err := e.apply(it.Ins(1, 1, "a")); err == nil {
			t.Fatal("Apply through an untrusted certificate succeeded")
		}
	})

	t.Run("right CA is trusted", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := Check(ctx, fakeConfig(t, srv, nil)); err != nil {
			t.Fatalf("Check over TLS: %v", err)
		}
	})

	t.Run("http needs insecure_http", func(t *testing.T) {
		raw := fakeConfig(t, srv, map[string]any{"protocol": "http", "tls_ca_file": nil})
		_, err := ParseConfig(raw)
		if err == nil || !strings.Contains(err.Error(), "insecure_http") {
			t.Fatalf("ParseConfig with protocol http = %v, want an error naming insecure_http", err)
		}
		err = Check(context.Background(), raw)
		var ce *CheckError
		if !errors.As(err, &ce) || ce.Field != "insecure_http" {
			t.Fatalf("Check with protocol http = %v, want a CheckError blaming insecure_http", err)
		}
	})

	t.Run("plain http with insecure_http", func(t *testing.T) {
		cfg := fakesnowflake.DefaultConfig(testAccount)
		cfg.Users = []fakesnowflake.User{{Name: testUser, PublicKeys: []*rsa.PublicKey{&testKeys()[0].PublicKey}}}
		plain, err := fakesnowflake.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := plain.Start(); err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := Check(ctx, fakeConfig(t, plain, nil)); err != nil {
			t.Fatalf("Check over http with insecure_http: %v", err)
		}
	})
}
