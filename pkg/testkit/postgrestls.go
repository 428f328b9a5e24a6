package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EnableTLS turns on TLS in the cluster with a server certificate that ca
// issues for hosts (give another name than 127.0.0.1 to test a mismatch),
// makes ca the CA of client certificates (pg_hba "cert"), and restarts
// the cluster. Plain connections keep working until SetHBA requires
// hostssl.
func (p *Postgres) EnableTLS(tb testing.TB, ca *CA, hosts ...string) Leaf {
	tb.Helper()
	leaf := ca.Issue(tb, "pg-server-"+RandomSuffix(), hosts...)
	files := map[string][]byte{"server.crt": leaf.CertPEM, "server.key": leaf.KeyPEM, "root.crt": ca.CertPEM}
	for name, b := range files {
		// 0600 and owned by the server's user: PostgreSQL refuses a key
		// file others can read.
		p.writeOwned(tb, name, b)
	}
	p.appendConf(tb, "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n")
	p.restart(tb)
	return leaf
}

// SetHBA replaces pg_hba.conf with lines (e.g. "hostssl all alice
// 127.0.0.1/32 scram-sha-256") after the lines that keep the postgres
// superuser trusted over the socket and plain TCP (so Exec and Connect
// keep working), and restarts the cluster so the next connection sees
// them.
func (p *Postgres) SetHBA(tb testing.TB, lines ...string) {
	tb.Helper()
	hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost replication postgres 127.0.0.1/32 trust\n" +
		strings.Join(lines, "\n") + "\n"
	p.writeOwned(tb, "pg_hba.conf", []byte(hba))
	p.restart(tb)
}

func (p *Postgres) writeOwned(tb testing.TB, name string, b []byte) {
	tb.Helper()
	path := filepath.Join(p.DataDir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	if p.cred != nil {
		if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			tb.Fatalf("testkit: %v", err)
		}
	}
}

func (p *Postgres) appendConf(tb testing.TB, conf string) {
	tb.Helper()
	f, err := os.OpenFile(filepath.Join(p.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(conf); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
}

func (p *Postgres) restart(tb testing.TB) {
	tb.Helper()
	if err := p.Stop("fast"); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	if err := p.Start(); err != nil {
		log, _ := os.ReadFile(p.logFile)
		tb.Fatalf("testkit: restart postgres: %v\n%s", err, log)
	}
}
