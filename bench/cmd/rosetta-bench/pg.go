package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// server is the bench's own PostgreSQL cluster: source, config DBs and
// destination DBs all live in it, as in `make demo`. testkit's starter
// needs a *testing.T, so this is a small non-test one with the same
// settings plus a larger shared_buffers for a 1M-change backlog.
type server struct {
	port    int
	bin     string
	root    string
	data    string
	cred    *syscall.Credential
	logFile string
}

func startServer(root string) (*server, error) {
	bin, err := testkit.PostgresBinDir()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin, root: root, data: filepath.Join(root, "data"), logFile: filepath.Join(root, "pg.log")}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(root, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := s.cmd("initdb", "-D", s.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	conf := `
listen_addresses = '127.0.0.1'
wal_level = logical
max_wal_senders = 20
max_replication_slots = 40
max_connections = 200
fsync = off
synchronous_commit = on
full_page_writes = off
shared_buffers = 256MB
max_wal_size = 4GB
unix_socket_directories = '` + root + `'
log_min_messages = warning
wal_sender_timeout = 60s
`
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	f.WriteString(conf)
	f.Close()
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(s.data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, err
	}
	if s.cred != nil {
		os.Chown(filepath.Join(s.data, "pg_hba.conf"), int(s.cred.Uid), int(s.cred.Gid))
	}
	s.port, err = freePort()
	if err != nil {
		return nil, err
	}
	out, err := s.cmd("pg_ctl", "-D", s.data, "-l", s.logFile, "-w", "-t", "60", "-o", "-p "+strconv.Itoa(s.port), "start").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return s, nil
}

func (s *server) stop() {
	_ = s.cmd("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop").Run()
}

func (s *server) cmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(filepath.Join(s.bin, name), args...)
	c.Dir = s.root
	if s.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	c.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	return c
}

func (s *server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func (s *server) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, s.dsn(db))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", db, err)
	}
	return c, nil
}

func (s *server) exec(ctx context.Context, db, sql string, args ...any) error {
	c, err := s.connect(ctx, db)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("exec in %s: %w: %s", db, err, sql)
	}
	return nil
}

func (s *server) createDB(ctx context.Context, name string) error {
	return s.exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

func (s *server) dropDB(ctx context.Context, name string) {
	_ = s.exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// freePort returns a free TCP port that is none of the machine services'
// standard ports.
func freePort() (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		switch p {
		case 5432, 6379, 4222, 4223, 8080:
			continue
		}
		return p, nil
	}
	return 0, fmt.Errorf("no free port")
}

func waitFor(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
