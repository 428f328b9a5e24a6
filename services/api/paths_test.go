package api

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// testConfinedPaths checks that a DuckDB destination's path stays inside
// the configured roots (relative paths go under the first, escapes by
// "..", absolute paths and symbolic links are refused) and that a
// Snowflake private_key_path is refused without ROSETTA_KEYS_DIR and
// outside it, on create, update and check, and a tls_ca_file likewise.
func testConfinedPaths(t *testing.T, f *fixture, js jetstream.JetStream) {
	root := t.TempDir()
	outside := t.TempDir()
	keys := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	c := newClientConfig(t, f, js, nil, Config{Addr: "127.0.0.1:0", DuckDBRoots: []string{root},
		Outbound: OutboundLimits{PerMinute: 6000, Burst: 1000, Concurrent: 64}})
	duck := func(name, path string) map[string]any {
		return map[string]any{"name": name, "type": "duckdb", "config": map[string]any{"path": path}}
	}

	var rel destinationView
	c.must(201, "POST", "/destinations", duck("rel", "lake/a.duckdb"), &rel)
	if got, want := rel.Config["path"], filepath.Join(root, "lake", "a.duckdb"); got != want {
		t.Fatalf("relative path stored as %v, want %s", got, want)
	}
	c.must(201, "POST", "/destinations", duck("abs", filepath.Join(root, "b.duckdb")), nil)
	for name, p := range map[string]string{
		"absolute outside": filepath.Join(outside, "x.duckdb"),
		"system file":      "/etc/passwd",
		"dot-dot":          "../x.duckdb",
		"dot-dot inside":   filepath.Join(root, "lake", "..", "..", "x.duckdb"),
		"symlink out":      filepath.Join(root, "link", "x.duckdb"),
		"the root itself":  root,
	} {
		t.Run(name, func(t *testing.T) {
			c.wantError("POST", "/destinations", duck("bad", p), 422, "config.path", "outside the directories", "ROSETTA_DUCKDB_ROOTS")
			c.wantError("POST", "/destinations/check", duck("bad", p), 422, "config.path", "outside the directories")
			c.wantError("PUT", fmt.Sprintf("/destinations/%d", rel.ID), duck("rel", p), 422, "config.path", "outside the directories")
		})
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("files appeared outside the root: %v", entries)
	}

	snow := func(keyPath string) map[string]any {
		return map[string]any{"name": "snow", "type": "snowflake", "config": map[string]any{
			"account": "acme-xy123", "user": "LOADER", "database": "RAW", "schema": "PUBLIC", "private_key_path": keyPath}}
	}
	c.wantError("POST", "/destinations", snow(filepath.Join(keys, "k.p8")), 422, "config.private_key_path", "ROSETTA_KEYS_DIR is not set", "config.private_key")
	c.srv.cfg.KeysDir = keys
	c.wantError("POST", "/destinations", snow("/etc/ssh/ssh_host_rsa_key"), 422, "config.private_key_path", "outside ROSETTA_KEYS_DIR")
	c.wantError("POST", "/destinations", snow("../k.p8"), 422, "config.private_key_path", "outside ROSETTA_KEYS_DIR")
	var sf destinationView
	c.must(201, "POST", "/destinations", snow("k.p8"), &sf)
	full, err := c.store.DestinationWithSecrets(context.Background(), sf.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := full.Config["private_key_path"]; got != filepath.Join(keys, "k.p8") {
		t.Fatalf("private_key_path stored as %v, want it under %s", got, keys)
	}

	// tls_ca_file decides whom the sink trusts with the key and the rows:
	// confined the same way.
	snowCA := func(name, caPath string) map[string]any {
		b := snow("k.p8")
		b["name"] = name
		b["config"].(map[string]any)["tls_ca_file"] = caPath
		return b
	}
	if err := os.Symlink(outside, filepath.Join(keys, "link")); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]string{
		"absolute outside": filepath.Join(outside, "ca.pem"),
		"system file":      "/etc/passwd",
		"dot-dot":          "../ca.pem",
		"symlink out":      filepath.Join(keys, "link", "ca.pem"),
		"the dir itself":   keys,
	} {
		t.Run("tls_ca_file "+name, func(t *testing.T) {
			c.wantError("POST", "/destinations", snowCA("snow-ca", p), 422, "config.tls_ca_file", "outside ROSETTA_KEYS_DIR")
			c.wantError("POST", "/destinations/check", snowCA("snow-ca", p), 422, "config.tls_ca_file", "outside ROSETTA_KEYS_DIR")
			c.wantError("PUT", fmt.Sprintf("/destinations/%d", sf.ID), snowCA("snow", p), 422, "config.tls_ca_file", "outside ROSETTA_KEYS_DIR")
		})
	}
	var ca destinationView
	c.must(201, "POST", "/destinations", snowCA("snow-ca", "certs/ca.pem"), &ca)
	if got := ca.Config["tls_ca_file"]; got != filepath.Join(keys, "certs", "ca.pem") {
		t.Fatalf("tls_ca_file stored as %v, want it under %s", got, keys)
	}
	c.srv.cfg.KeysDir = ""
	noKeysDir := snowCA("snow-ca", filepath.Join(keys, "certs", "ca.pem"))
	delete(noKeysDir["config"].(map[string]any), "private_key_path")
	noKeysDir["config"].(map[string]any)["private_key"] = "PEM text"
	c.wantError("POST", "/destinations", noKeysDir, 422, "config.tls_ca_file", "ROSETTA_KEYS_DIR is not set", "system's roots")
}

func TestWithin(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	tests := []struct {
		path string
		ok   bool
	}{
		{filepath.Join(root, "a"), true},
		{filepath.Join(root, "d", "e", "f.duckdb"), true},
		{root, false},
		{filepath.Join(root, ".."), false},
		{filepath.Join(root, "..", filepath.Base(root)+"x", "a"), false},
		{filepath.Join(root, "..a"), true},
		{"/", false},
	}
	for _, tt := range tests {
		if _, ok := within(tt.path, []string{root}); ok != tt.ok {
			t.Errorf("within(%q) = %v, want %v", tt.path, ok, tt.ok)
		}
	}
}
