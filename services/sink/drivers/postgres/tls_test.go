package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestTLSDestination: the sink's own connection applies the destination's
// TLS settings, decoded from the stored config as the sink decodes it: a
// client-certificate login over verify-full is encrypted, and a server
// whose certificate names another host is refused with the hint of what
// to change.
func TestTLSDestination(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t)
	pg := testkit.StartPostgres(t)
	pg.EnableTLS(t, ca, "127.0.0.1")
	pg.Exec(t, "postgres", `CREATE ROLE sinkcert LOGIN`)
	pg.SetHBA(t, "hostssl all sinkcert 127.0.0.1/32 cert")
	wrong := testkit.StartPostgres(t)
	wrong.EnableTLS(t, ca, "127.0.0.2")
	client := ca.Issue(t, "sinkcert")

	decode := func(port int, user string) Config {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"host": "127.0.0.1", "port": port, "database": "postgres", "user": user,
			"sslmode": "verify-full", "sslrootcert": string(ca.CertPEM), "sslcert": string(client.CertPEM), "sslkey": string(client.KeyPEM),
			"require_auth": "none"})
		cfg, err := ParseConfig(raw)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	drv := New(decode(pg.Port, "sinkcert"), quietLog())
	defer drv.Close()
	conn, err := drv.connect(ctx)
	if err != nil {
		t.Fatalf("connect with a client certificate: %v", err)
	}
	var ssl bool
	var user string
	if err := conn.QueryRow(ctx, `SELECT s.ssl, current_user::text FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()`).Scan(&ssl, &user); err != nil {
		t.Fatal(err)
	}
	if !ssl || user != "sinkcert" {
		t.Fatalf("connection: ssl %v as %s, want an encrypted certificate login as sinkcert", ssl, user)
	}

	bad := New(decode(wrong.Port, "postgres"), quietLog())
	defer bad.Close()
	_, err = bad.connect(ctx)
	if err == nil || !strings.Contains(err.Error(), "valid for 127.0.0.2, not 127.0.0.1") || !strings.Contains(err.Error(), "does not name the host") {
		t.Fatalf("connect to a server with another host's certificate: err = %v, want a refusal with the hint", err)
	}
}
