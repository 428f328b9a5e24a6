package api

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// testLinkSecurity checks the TLS and authentication settings of sources
// and destinations against a real server with TLS and certificates from
// a CA made in the test: what works is stored (the client key sealed and
// never shown), what the server refuses is a 422 naming the setting to
// change, and invalid settings are refused before anything connects.
func testLinkSecurity(t *testing.T, f *fixture, js jetstream.JetStream) {
	ca := testkit.NewCA(t)
	otherCA := testkit.NewCA(t)
	pg := testkit.StartPostgres(t)
	pg.EnableTLS(t, ca, "127.0.0.1")
	wrong := testkit.StartPostgres(t)
	wrong.EnableTLS(t, ca, "db.other.example", "127.0.0.2")
	for _, p := range []*testkit.Postgres{pg, wrong} {
		p.Exec(t, "postgres", `
			SET password_encryption = 'scram-sha-256';
			CREATE ROLE scram LOGIN REPLICATION PASSWORD 'scram-pw-never-shown';
			CREATE ROLE clear LOGIN REPLICATION PASSWORD 'clear-pw-never-shown';
			CREATE ROLE certuser LOGIN REPLICATION;`)
		p.SetHBA(t,
			"hostssl all scram 127.0.0.1/32 scram-sha-256",
			"hostssl all clear 127.0.0.1/32 password",
			"hostssl all certuser 127.0.0.1/32 cert",
		)
	}
	client := ca.Issue(t, "certuser")
	keyBody := strings.Split(string(client.KeyPEM), "\n")[1]
	caPEM := string(ca.CertPEM)
	c := newClient(t, f, js, nil)
	src := func(name string, p *testkit.Postgres, user, pw string, extra map[string]any) map[string]any {
		b := map[string]any{"name": name, "host": "127.0.0.1", "port": p.Port, "database": "postgres", "user": user, "password": pw}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	noSecrets := func(raw []byte) {
		t.Helper()
		for _, s := range []string{keyBody, "scram-pw-never-shown", "clear-pw-never-shown"} {
			if bytes.Contains(raw, []byte(s)) {
				t.Fatalf("the response contains a secret: %s", raw)
			}
		}
	}
	verifyFull := map[string]any{"sslmode": "verify-full", "sslrootcert": caPEM, "require_auth": "scram-sha-256", "channel_binding": "require"}

	// verify-full source
	func() {
		var v sourceView
		noSecrets(c.must(201, "POST", "/sources", src("tls", pg, "scram", "scram-pw-never-shown", verifyFull), &v))
		if v.SSLMode != "verify-full" || v.SSLRootCert != caPEM || v.RequireAuth != "scram-sha-256" || v.ChannelBind != "require" || v.SSLKeySet {
			t.Fatalf("stored source = %+v", v)
		}
		// Changing what proves the server keeps the password only if it
		// is sent again.
		body := src("tls", pg, "scram", "", verifyFull)
		delete(body, "password")
		body["sslrootcert"] = string(otherCA.CertPEM)
		c.wantError("PUT", fmt.Sprintf("/sources/%d", v.ID), body, 422, "password", "sslrootcert changed", "send the password again")
		body["sslmode"], body["sslrootcert"] = "require", ""
		c.wantError("PUT", fmt.Sprintf("/sources/%d", v.ID), body, 422, "password", "sslmode changed")
	}()
	// certificate for another host
	func() {
		c.wantError("POST", "/sources", src("wrong", wrong, "scram", "scram-pw-never-shown", verifyFull), 422, "host",
			"valid for 127.0.0.2, not 127.0.0.1", "does not name the host")
		// verify-ca checks the CA only.
		extra := map[string]any{"sslmode": "verify-ca", "sslrootcert": caPEM}
		noSecrets(c.must(201, "POST", "/sources", src("ca-only", wrong, "scram", "scram-pw-never-shown", extra), nil))
	}()
	// untrusted CA
	func() {
		extra := map[string]any{"sslmode": "verify-full", "sslrootcert": string(otherCA.CertPEM)}
		c.wantError("POST", "/sources", src("other-ca", pg, "scram", "scram-pw-never-shown", extra), 422, "sslrootcert", "set sslrootcert")
	}()
	// cleartext password refused
	func() {
		c.wantError("POST", "/sources", src("clear", pg, "clear", "clear-pw-never-shown", map[string]any{"sslmode": "verify-full", "sslrootcert": caPEM, "require_auth": "scram-sha-256"}),
			422, "require_auth", "server requested password authentication", "scram-sha-256")
	}()
	// client certificate source
	func() {
		var v sourceView
		extra := map[string]any{"sslmode": "verify-full", "sslrootcert": caPEM, "sslcert": string(client.CertPEM), "sslkey": string(client.KeyPEM)}
		noSecrets(c.must(201, "POST", "/sources", src("cert", pg, "certuser", "", extra), &v))
		if !v.SSLKeySet || v.SSLCert != string(client.CertPEM) {
			t.Fatalf("stored source = %+v", v)
		}
		noSecrets(c.must(200, "GET", fmt.Sprintf("/sources/%d", v.ID), nil, nil))
		var sealed []byte
		conn := f.pg.Connect(t, c.cfgDB)
		if err := conn.QueryRow(context.Background(), `SELECT sslkey_enc FROM sources WHERE id = $1`, v.ID).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if len(sealed) == 0 || bytes.Contains(sealed, []byte(keyBody)) || bytes.Contains(sealed, []byte("PRIVATE KEY")) {
			t.Fatalf("the client key is not stored sealed: %d bytes", len(sealed))
		}
		full, err := c.store.SourceWithSecrets(context.Background(), v.ID)
		if err != nil || full.SSLKey != string(client.KeyPEM) {
			t.Fatalf("the sealed key does not open to the one sent (err %v)", err)
		}
		// Without the certificate the server refuses the login.
		c.wantError("POST", "/sources", src("nocert", pg, "certuser", "", map[string]any{"sslmode": "verify-full", "sslrootcert": caPEM}), 422, "user", "certificate")
	}()
	// client certificate destination
	func() {
		cfg := map[string]any{"host": "127.0.0.1", "port": pg.Port, "database": "postgres", "user": "certuser",
			"sslmode": "verify-full", "sslrootcert": caPEM, "sslcert": string(client.CertPEM), "sslkey": string(client.KeyPEM),
			"require_auth": "none"}
		var v destinationView
		noSecrets(c.must(201, "POST", "/destinations", map[string]any{"name": "tls-dest", "type": "postgres", "config": cfg}, &v))
		if v.SSLKeySet == nil || !*v.SSLKeySet || v.Config["sslrootcert"] != caPEM || v.Config["sslkey"] != nil {
			t.Fatalf("stored destination = %+v", v)
		}
		cfg["sslrootcert"] = string(otherCA.CertPEM)
		c.wantError("POST", "/destinations/check", map[string]any{"name": "x", "type": "postgres", "config": cfg}, 422, "config.sslrootcert", "set sslrootcert")
		// Moving the stored key to another CA's server needs it again.
		delete(cfg, "sslkey")
		c.wantError("PUT", fmt.Sprintf("/destinations/%d", v.ID), map[string]any{"name": "tls-dest", "type": "postgres", "config": cfg}, 422, "config.sslkey", "config.sslrootcert changed")
	}()
	// validation
	func() {
		base := func(extra map[string]any) map[string]any {
			return src("bad", pg, "scram", "scram-pw-never-shown", extra)
		}
		c.wantError("POST", "/sources", base(map[string]any{"sslmode": "verify"}), 422, "sslmode", "verify-full")
		c.wantError("POST", "/sources", base(map[string]any{"sslmode": "require", "sslcert": string(client.CertPEM)}), 422, "sslkey", "go together")
		c.wantError("POST", "/sources", base(map[string]any{"require_auth": "scram"}), 422, "require_auth", "scram-sha-256")
		c.wantError("POST", "/sources", base(map[string]any{"channel_binding": "always"}), 422, "channel_binding", "disable, prefer, require")
		c.wantError("POST", "/sources", base(map[string]any{"sslmode": "disable", "sslrootcert": caPEM}), 422, "sslrootcert", "needs TLS")
		c.wantError("POST", "/sources", base(map[string]any{"sslmode": "verify-full", "sslrootcert": ca.CertFile}), 422, "sslrootcert", "ROSETTA_KEYS_DIR is not set")
		dest := map[string]any{"name": "bad", "type": "postgres", "config": map[string]any{"host": "127.0.0.1", "port": pg.Port,
			"database": "postgres", "user": "scram", "sslmode": "verify-full", "sslkey": string(client.KeyPEM)}}
		c.wantError("POST", "/destinations", dest, 422, "config.sslcert", "go together")
	}()
	// files under ROSETTA_KEYS_DIR
	func() {
		keys := t.TempDir()
		cl := newClientConfig(t, f, js, nil, Config{Addr: "127.0.0.1:0", KeysDir: keys, Outbound: OutboundLimits{PerMinute: 6000, Burst: 1000, Concurrent: 64}})
		if err := os.WriteFile(filepath.Join(keys, "ca.pem"), ca.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		var v sourceView
		cl.must(201, "POST", "/sources", src("file-ca", pg, "scram", "scram-pw-never-shown", map[string]any{"sslmode": "verify-full", "sslrootcert": "ca.pem"}), &v)
		if v.SSLRootCert != filepath.Join(keys, "ca.pem") {
			t.Fatalf("sslrootcert stored as %q, want the absolute path under %s", v.SSLRootCert, keys)
		}
		cl.wantError("POST", "/sources", src("outside", pg, "scram", "scram-pw-never-shown", map[string]any{"sslmode": "verify-full", "sslrootcert": ca.CertFile}),
			422, "sslrootcert", "outside ROSETTA_KEYS_DIR")
		cl.wantError("POST", "/sources", src("dotdot", pg, "scram", "scram-pw-never-shown", map[string]any{"sslmode": "verify-full", "sslkey": "../k.pem", "sslcert": "c.pem"}),
			422, "sslkey", "outside ROSETTA_KEYS_DIR")
	}()
}
