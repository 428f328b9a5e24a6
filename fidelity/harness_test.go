// Package fidelity checks, against the real rosetta binary and real
// PostgreSQL, that every value of every built-in type, and every kind of
// change (TOASTed updates, truncates, added columns), arrives at the
// PostgreSQL and DuckDB destinations exactly as it was at the source.
//
// The harness is a trimmed copy of e2e's: test helpers cannot be shared
// across _test packages, and e2e/ belongs to its own suite.
package fidelity

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

var rosettaBin string

// TestMain builds the binary once. Without -race: the suite's point is
// values, not interleavings, and a race build runs several times slower on
// the 2-core machines the suite's time budget is set for.
func TestMain(m *testing.M) {
	bin, cleanup, err := testkit.BuildBinary("../services/rosetta", "rosetta", false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rosettaBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// env is one test's world: one PostgreSQL cluster holding the config,
// source and destination databases, and one `rosetta dev` process.
type env struct {
	t        *testing.T
	pg       *testkit.Postgres
	configDB string
	sourceDB string
	destDB   string
	dataDir  string
	httpAddr string
	natsAddr string
	proc     *exec.Cmd
	exited   chan error
	logBuf   *testkit.LogBuffer
	sourceID int64
	extraEnv []string // added to the rosetta process's environment
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pg := testkit.StartPostgres(t)
	e := &env{
		t:        t,
		pg:       pg,
		configDB: pg.CreateDatabase(t, "config"),
		sourceDB: pg.CreateDatabase(t, "source"),
		destDB:   pg.CreateDatabase(t, "dest"),
		dataDir:  t.TempDir(),
		httpAddr: "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)),
		natsAddr: "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)),
		logBuf:   &testkit.LogBuffer{},
	}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("rosetta log (tail):\n%s", testkit.Tail(e.logBuf.String(), 8000))
		}
	})
	return e
}

// start runs `rosetta dev` and waits until its API answers.
func (e *env) start() {
	e.t.Helper()
	cmd := exec.Command(rosettaBin, "dev")
	cmd.Env = append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+e.pg.DSN(e.configDB),
		"ROSETTA_HTTP_ADDR="+e.httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR="+e.natsAddr,
		"ROSETTA_NATS_URL=",
		"ROSETTA_REDIS_URL=",
		"ROSETTA_DATA_DIR="+e.dataDir,
		"ROSETTA_SECRET_KEY=fidelity-test-secret-key-0123456789",
		"ROSETTA_API_TOKEN="+apiToken,
		"ROSETTA_RECONCILE_INTERVAL=2s",
		"ROSETTA_LOG_LEVEL=info",
		"ROSETTA_LOG_FORMAT=text",
	)
	cmd.Env = append(cmd.Env, e.extraEnv...)
	cmd.Stdout, cmd.Stderr = e.logBuf, e.logBuf
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start rosetta: %v", err)
	}
	e.proc = cmd
	e.exited = make(chan error, 1)
	go func() { e.exited <- cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for !e.healthy() {
		select {
		case err := <-e.exited:
			e.proc = nil
			e.t.Fatalf("rosetta exited during start: %v\n%s", err, testkit.Tail(e.logBuf.String(), 4000))
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rosetta not healthy after 90s\n%s", testkit.Tail(e.logBuf.String(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiToken is the harness's bootstrap admin token (ROSETTA_API_TOKEN).
const apiToken = "fidelity-test-api-token-0123456789abcdef"

// healthy reports whether the API is ready: its dependencies answer.
func (e *env) healthy() bool {
	req, _ := http.NewRequest("GET", "http://"+e.httpAddr+"/api/v1/ready", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (e *env) stop() {
	if e.proc == nil {
		return
	}
	p := e.proc
	e.proc = nil
	syscall.Kill(p.Process.Pid, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(p.Process.Pid, syscall.SIGKILL)
		<-e.exited
	}
}

// mustAPI calls the REST API, fails the test on a non-2xx answer and
// decodes the JSON answer into out (may be nil).
func (e *env) mustAPI(method, path string, body any, out any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+e.httpAddr+"/api/v1"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		e.t.Fatalf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

type idOnly struct {
	ID int64 `json:"id"`
}

// createSource registers the source database once.
func (e *env) createSource() int64 {
	e.t.Helper()
	if e.sourceID == 0 {
		var src idOnly
		e.mustAPI("POST", "/sources", map[string]any{
			"name": "src", "host": "127.0.0.1", "port": e.pg.Port, "database": e.sourceDB,
			"user": "postgres", "password": "source-secret-pw", "sslmode": "disable",
		}, &src)
		e.sourceID = src.ID
	}
	return e.sourceID
}

func (e *env) createPostgresDestination(name string) int64 {
	e.t.Helper()
	var dst idOnly
	e.mustAPI("POST", "/destinations", map[string]any{
		"name": name, "type": "postgres", "config": map[string]any{
			"host": "127.0.0.1", "port": e.pg.Port, "database": e.destDB, "user": "postgres",
			"password": "dest-secret-pw", "schema": "public", "sslmode": "disable",
		},
	}, &dst)
	return dst.ID
}

// createDuckDBDestination registers a DuckDB file that Rosetta releases
// after every batch, so that the test's reads get in quickly.
func (e *env) createDuckDBDestination(name, path string) int64 {
	e.t.Helper()
	var dst idOnly
	e.mustAPI("POST", "/destinations", map[string]any{
		"name": name, "type": "duckdb", "config": map[string]any{
			"path": path, "schema": "main", "release_after": "0s",
		},
	}, &dst)
	return dst.ID
}

// createPipeline creates and starts a pipeline over tables.
func (e *env) createPipeline(name string, destIDs []int64, tables ...string) int64 {
	e.t.Helper()
	var pipe idOnly
	// No initial snapshot: this suite checks what the change stream carries
	// (a snapshot racing with the ALTER TABLE … DEFAULT step would fill the
	// rows that the stream alone leaves NULL, and the result would depend on
	// timing). Snapshots have their own tests in services/backfill.
	e.mustAPI("POST", "/pipelines", map[string]any{
		"name": name, "source_id": e.createSource(), "destination_ids": destIDs, "tables": tables,
		"snapshot": false,
	}, &pipe)
	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	return pipe.ID
}

type pipelineDetail struct {
	Destinations []struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		LastError string `json:"last_error"`
	} `json:"destinations"`
}

// waitCapturing waits until the source's replication slot is streaming, so
// that changes written from now on are captured.
func (e *env) waitCapturing() {
	e.t.Helper()
	conn := e.connect(e.sourceDB)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_replication_slots WHERE database = $1 AND active", e.sourceDB).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("capture did not start streaming within 60s\n%s", testkit.Tail(e.logBuf.String(), 4000))
}

// pinnedSession is what the test's own connections use, whatever the
// databases' defaults are: the suite sets odd defaults on the source and
// destination databases (see TestFidelity) so that a component relying on
// a server default shows up as a difference, while the test itself reads
// both sides the same way.
const pinnedSession = `SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC';
SET extra_float_digits = 1; SET bytea_output = 'hex'; SET xmloption = content`

// connect opens a connection to db with the pinned session settings.
func (e *env) connect(db string) *pgx.Conn {
	e.t.Helper()
	conn := e.pg.Connect(e.t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.PgConn().Exec(ctx, pinnedSession).ReadAll(); err != nil {
		e.t.Fatalf("pin session settings in %s: %v", db, err)
	}
	return conn
}

// exec runs statements in the source database through a pinned session.
func (e *env) exec(conn *pgx.Conn, stmts string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := conn.PgConn().Exec(ctx, stmts).ReadAll(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Position > 0 && int(pgErr.Position) <= len(stmts) {
			p := int(pgErr.Position)
			e.t.Fatalf("exec: %v at …%s", err, stmts[max(0, p-200):min(len(stmts), p+100)])
		}
		e.t.Fatalf("exec: %v\n%s", err, testkit.Tail(stmts, 2000))
	}
}

// duckQuery runs fn against the DuckDB file opened read-only. Rosetta holds
// the file's lock while it applies a batch, so opening retries while the
// lock is taken (see docs/duckdb.md); the session is kept short.
func duckQuery(ctx context.Context, path string, fn func(*sql.DB) error) error {
	for {
		err := duckOnce(ctx, path, fn)
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "lock") && !os.IsNotExist(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("duckdb %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func duckOnce(ctx context.Context, path string, fn func(*sql.DB) error) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := sql.Open("duckdb", path+"?access_mode=READ_ONLY")
	if err != nil {
		return fmt.Errorf("open duckdb %s: %w", path, err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("open duckdb %s: %w", path, err)
	}
	return fn(db)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}
