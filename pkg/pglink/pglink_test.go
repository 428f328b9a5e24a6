package pglink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// connect opens a connection as user with s applied, and reports whether
// it is encrypted (pg_stat_ssl).
func connect(t *testing.T, pg *testkit.Postgres, host, user, password string, s Security) (bool, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=disable connect_timeout=10", host, pg.Port, user))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = password
	if err := s.Apply(&cfg.Config); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	return ssl, nil
}

// TestWithPostgres runs each protection against a real server with TLS and
// certificates from a CA made in the test.
func TestWithPostgres(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t)
	pg := testkit.StartPostgres(t)
	pg.EnableTLS(t, ca, "127.0.0.1", "localhost")
	pg.Exec(t, "postgres", `
		SET password_encryption = 'scram-sha-256';
		CREATE ROLE scram LOGIN PASSWORD 'scram-pw';
		CREATE ROLE clear LOGIN PASSWORD 'clear-pw';
		CREATE ROLE certuser LOGIN;
		CREATE ROLE plain LOGIN;`)
	pg.SetHBA(t,
		"hostssl all scram 127.0.0.1/32 scram-sha-256",
		"hostssl all clear 127.0.0.1/32 password",
		"hostssl all certuser 127.0.0.1/32 cert",
		"host all plain 127.0.0.1/32 trust",
	)
	client := ca.Issue(t, "certuser")
	otherCA := testkit.NewCA(t)
	caPEM := string(ca.CertPEM)

	// A second server whose certificate names another host: verify-full
	// must refuse it even though the CA is trusted.
	wrong := testkit.StartPostgres(t)
	wrong.EnableTLS(t, ca, "db.other.example", "127.0.0.2")

	cases := []struct {
		name     string
		pg       *testkit.Postgres
		user, pw string
		sec      Security
		wantErr  string // "" = connects
		wantSSL  bool
	}{
		{"verify-full with the CA as PEM", pg, "scram", "scram-pw", Security{SSLMode: "verify-full", RootCert: caPEM}, "", true},
		{"verify-full with the CA as a file", pg, "scram", "scram-pw", Security{SSLMode: "verify-full", RootCert: ca.CertFile}, "", true},
		{"verify-full with another CA", pg, "scram", "scram-pw", Security{SSLMode: "verify-full", RootCert: string(otherCA.CertPEM)}, "certificate signed by unknown authority", false},
		{"verify-full without a CA uses the system's", pg, "scram", "scram-pw", Security{SSLMode: "verify-full"}, "certificate signed by unknown authority", false},
		{"verify-full refuses a certificate for another host", wrong, "postgres", "", Security{SSLMode: "verify-full", RootCert: caPEM}, "certificate is valid for 127.0.0.2, not 127.0.0.1", false},
		{"verify-ca accepts a certificate for another host", wrong, "postgres", "", Security{SSLMode: "verify-ca", RootCert: caPEM}, "", true},
		{"verify-ca with another CA", wrong, "postgres", "", Security{SSLMode: "verify-ca", RootCert: string(otherCA.CertPEM)}, "certificate signed by unknown authority", false},
		{"require with a CA verifies the chain", wrong, "postgres", "", Security{SSLMode: "require", RootCert: string(otherCA.CertPEM)}, "certificate signed by unknown authority", false},
		{"require without a CA only encrypts", wrong, "postgres", "", Security{SSLMode: "require"}, "", true},
		{"prefer encrypts when offered", pg, "plain", "", Security{}, "", true},
		{"disable stays plain", pg, "plain", "", Security{SSLMode: "disable"}, "", false},
		{"client certificate login", pg, "certuser", "", Security{SSLMode: "verify-full", RootCert: caPEM, ClientCert: string(client.CertPEM), ClientKey: string(client.KeyPEM)}, "", true},
		{"client certificate from files", pg, "certuser", "", Security{SSLMode: "verify-full", RootCert: caPEM, ClientCert: client.CertFile, ClientKey: client.KeyFile}, "", true},
		{"cert login without a certificate", pg, "certuser", "", Security{SSLMode: "verify-full", RootCert: caPEM}, "certificate", false},
		{"require_auth scram accepts SCRAM", pg, "scram", "scram-pw", Security{SSLMode: "verify-full", RootCert: caPEM, RequireAuth: "scram-sha-256"}, "", true},
		{"require_auth scram refuses a cleartext password", pg, "clear", "clear-pw", Security{SSLMode: "verify-full", RootCert: caPEM, RequireAuth: "scram-sha-256"}, "server requested password authentication", false},
		{"cleartext password without require_auth", pg, "clear", "clear-pw", Security{SSLMode: "verify-full", RootCert: caPEM}, "", true},
		{"channel binding required over TLS", pg, "scram", "scram-pw", Security{SSLMode: "verify-full", RootCert: caPEM, RequireAuth: "scram-sha-256", ChannelBinding: "require"}, "", true},
		{"channel binding required refuses a cleartext password", pg, "clear", "clear-pw", Security{SSLMode: "verify-full", RootCert: caPEM, ChannelBinding: "require"}, "channel binding", false},
	}
	// What Hint must tell the admin to change, by cause.
	hints := map[string]string{
		"unknown authority":       "sslrootcert",
		"certificate is valid":    "does not name the host",
		"password authentication": "require_auth",
		"channel binding":         "channel_binding",
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ssl, err := connect(t, tc.pg, "127.0.0.1", tc.user, tc.pw, tc.sec)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				if ssl != tc.wantSSL {
					t.Fatalf("encrypted = %v, want %v", ssl, tc.wantSSL)
				}
				return
			}
			if err == nil {
				t.Fatalf("connected (encrypted %v), want an error with %q", ssl, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not say %q", err, tc.wantErr)
			}
			for cause, hint := range hints {
				if strings.Contains(tc.wantErr, cause) && !strings.Contains(Hint(err), hint) {
					t.Fatalf("Hint(%v) = %q, want it to mention %q", err, Hint(err), hint)
				}
			}
			if tc.pw != "" && strings.Contains(err.Error(), tc.pw) {
				t.Fatalf("error holds the password: %v", err)
			}
		})
	}
}

// TestPreferWithoutTLS: prefer (the default) still connects to a server
// without TLS, and require refuses it.
func TestPreferWithoutTLS(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	if ssl, err := connect(t, pg, "127.0.0.1", "postgres", "", Security{}); err != nil || ssl {
		t.Fatalf("prefer: encrypted %v, err %v; want a plain connection", ssl, err)
	}
	if _, err := connect(t, pg, "127.0.0.1", "postgres", "", Security{SSLMode: "require"}); err == nil || !strings.Contains(err.Error(), "server refused TLS") {
		t.Fatalf("require against a server without TLS: err %v, want server refused TLS", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t)
	leaf := ca.Issue(t, "client")
	other := ca.Issue(t, "other")
	badPEM := "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
	encKey := "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
	cases := []struct {
		name  string
		sec   Security
		field string // "" = valid
	}{
		{"empty", Security{}, ""},
		{"full", Security{SSLMode: "verify-full", RootCert: string(ca.CertPEM), ClientCert: string(leaf.CertPEM), ClientKey: string(leaf.KeyPEM), RequireAuth: "scram-sha-256", ChannelBinding: "require"}, ""},
		{"paths", Security{SSLMode: "verify-full", RootCert: "/keys/ca.pem", ClientCert: "/keys/c.pem", ClientKey: "/keys/c.key"}, ""},
		{"negated require_auth", Security{RequireAuth: "!password,!md5"}, ""},
		{"unknown sslmode", Security{SSLMode: "verify"}, "sslmode"},
		{"unknown channel_binding", Security{ChannelBinding: "always"}, "channel_binding"},
		{"unknown require_auth", Security{RequireAuth: "scram"}, "require_auth"},
		{"mixed require_auth", Security{RequireAuth: "scram-sha-256,!password"}, "require_auth"},
		{"certificate without key", Security{SSLMode: "require", ClientCert: string(leaf.CertPEM)}, "sslkey"},
		{"key without certificate", Security{SSLMode: "require", ClientKey: string(leaf.KeyPEM)}, "sslcert"},
		{"key of another certificate", Security{SSLMode: "require", ClientCert: string(leaf.CertPEM), ClientKey: string(other.KeyPEM)}, "sslkey"},
		{"encrypted key", Security{SSLMode: "require", ClientCert: string(leaf.CertPEM), ClientKey: encKey}, "sslkey"},
		{"root certificate that does not parse", Security{SSLMode: "verify-full", RootCert: badPEM}, "sslrootcert"},
		{"root certificate with disable", Security{SSLMode: "disable", RootCert: string(ca.CertPEM)}, "sslrootcert"},
		{"client certificate with disable", Security{SSLMode: "disable", ClientCert: string(leaf.CertPEM), ClientKey: string(leaf.KeyPEM)}, "sslcert"},
		{"channel binding required with disable", Security{SSLMode: "disable", ChannelBinding: "require"}, "channel_binding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sec.Validate()
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.field != "" && !errors.As(err, &fe):
				t.Fatalf("Validate = %v, want a FieldError for %s", err, tc.field)
			case tc.field != "" && fe.Field != tc.field:
				t.Fatalf("Validate blames %s (%v), want %s", fe.Field, err, tc.field)
			}
		})
	}
}

// TestApplyMissingFile: a path is read by Apply (so a renewed file is used
// by the next connection), and one that cannot be used names its field.
func TestApplyMissingFile(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig("host=127.0.0.1 port=1 sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "ca.pem")
	err = Security{SSLMode: "verify-full", RootCert: missing}.Apply(&cfg.Config)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "sslrootcert" || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Apply = %v, want a FieldError naming sslrootcert and the path", err)
	}
	if err := os.WriteFile(missing, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (Security{SSLMode: "verify-full", RootCert: missing}).Apply(&cfg.Config); !errors.As(err, &fe) || fe.Field != "sslrootcert" {
		t.Fatalf("Apply with a file holding no certificate = %v, want a FieldError for sslrootcert", err)
	}
}
