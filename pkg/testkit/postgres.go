// Package testkit starts real servers for tests: a PostgreSQL cluster with
// wal_level=logical (initdb into a temp dir, on a free port), redis-server on a
// free port, and an embedded NATS server with JetStream in a temp dir. It
// never uses the machine's own services or their standard ports. A missing
// binary fails the test with a message saying what to install.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL cluster owned by one test (or one package).
type Postgres struct {
	Port    int
	DataDir string
	binDir  string
	root    string
	cred    *syscall.Credential
	logFile string
}

// PostgresBinDir finds the newest /usr/lib/postgresql/*/bin with initdb.
func PostgresBinDir() (string, error) {
	if d := os.Getenv("ROSETTA_PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install them (apt-get install postgresql) or set ROSETTA_PG_BINDIR")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It
// never returns the standard ports of the machine's own services.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		switch p {
		case 5432, 6379, 4222, 3306, 5672, 1883, 8080:
			continue
		}
		return p
	}
	tb.Fatalf("free port: none found")
	return 0
}

// StartPostgres initdb's a new cluster with wal_level=logical on a free port
// and starts it; it is stopped and removed when the test ends. As root the
// server runs as the postgres user (PostgreSQL refuses root).
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	bin, err := PostgresBinDir()
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	root, err := os.MkdirTemp("", "rosetta-pg-")
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	p := &Postgres{binDir: bin, root: root, DataDir: filepath.Join(root, "data"), logFile: filepath.Join(root, "log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("testkit: running as root needs the postgres user to run PostgreSQL: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(root, uid, gid); err != nil {
			tb.Fatalf("testkit: %v", err)
		}
	}
	tb.Cleanup(func() {
		_ = p.run("pg_ctl", "-D", p.DataDir, "-m", "immediate", "-w", "stop")
		os.RemoveAll(root)
	})
	if out, err := p.output("initdb", "-D", p.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		tb.Fatalf("testkit: initdb: %v\n%s", err, out)
	}
	conf := `
listen_addresses = '127.0.0.1'
wal_level = logical
max_wal_senders = 20
max_replication_slots = 40
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
unix_socket_directories = '` + root + `'
log_min_messages = warning
wal_sender_timeout = 30s
`
	f, err := os.OpenFile(filepath.Join(p.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	f.WriteString(conf)
	f.Close()
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(p.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	if p.cred != nil {
		os.Chown(filepath.Join(p.DataDir, "pg_hba.conf"), int(p.cred.Uid), int(p.cred.Gid))
	}
	for attempt := 0; ; attempt++ {
		p.Port = FreePort(tb)
		if err := p.Start(); err == nil {
			break
		} else if attempt == 3 {
			log, _ := os.ReadFile(p.logFile)
			tb.Fatalf("testkit: start postgres: %v\n%s", err, log)
		}
	}
	return p
}

// Start starts the (stopped) cluster again on its port.
func (p *Postgres) Start() error {
	out, err := p.output("pg_ctl", "-D", p.DataDir, "-l", p.logFile, "-w", "-t", "60", "-o", "-p "+strconv.Itoa(p.Port), "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return nil
}

// Stop stops the cluster with the given shutdown mode (smart, fast, immediate).
func (p *Postgres) Stop(mode string) error {
	out, err := p.output("pg_ctl", "-D", p.DataDir, "-m", mode, "-w", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// Host is the TCP host the cluster listens on.
func (p *Postgres) Host() string { return "127.0.0.1" }

// DSN is a URL for database db as the postgres superuser.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// CreateDatabase creates a database with a unique name starting with prefix
// and returns its name.
func (p *Postgres) CreateDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	name := strings.ToLower(prefix) + "_" + RandomSuffix()
	p.Exec(tb, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return name
}

// Exec runs sql (one or more statements) in database db.
func (p *Postgres) Exec(tb testing.TB, db, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN(db))
	if err != nil {
		tb.Fatalf("testkit: connect %s: %v", db, err)
	}
	defer conn.Close(ctx)
	if len(args) == 0 {
		_, err = conn.PgConn().Exec(ctx, sql).ReadAll()
	} else {
		_, err = conn.Exec(ctx, sql, args...)
	}
	if err != nil {
		tb.Fatalf("testkit: exec in %s: %v\n%s", db, err, sql)
	}
}

// Connect opens a connection to db, closed when the test ends.
func (p *Postgres) Connect(tb testing.TB, db string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN(db))
	if err != nil {
		tb.Fatalf("testkit: connect %s: %v", db, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// BinDir is the directory of the server binaries (pg_recvlogical, psql …).
func (p *Postgres) BinDir() string { return p.binDir }

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.binDir, name), args...)
	cmd.Dir = p.root
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	return cmd
}

func (p *Postgres) run(name string, args ...string) error {
	_, err := p.output(name, args...)
	return err
}

func (p *Postgres) output(name string, args ...string) ([]byte, error) {
	return p.command(name, args...).CombinedOutput()
}

// RandomSuffix is a short random lower-case hex string for unique names.
func RandomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
