// Package e2e drives the real rosetta binary through its REST API against
// real PostgreSQL servers and asserts that destinations equal sources.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

var rosettaBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := testkit.BuildBinary("../services/rosetta", "rosetta", true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rosettaBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// env is one test's world: a PostgreSQL cluster holding the config, source
// and destination databases, and a rosetta dev process.
type env struct {
	t        *testing.T
	pg       *testkit.Postgres
	configDB string
	sourceDB string
	destDB   string
	dataDir  string
	httpAddr string
	natsAddr string
	natsURL  string // empty: rosetta dev embeds NATS
	audit    *audit
	extraEnv []string // added to the rosetta process's environment
	proc     *exec.Cmd
	exited   chan error
	logBuf   *testkit.LogBuffer
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
	}
	t.Cleanup(func() {
		e.stop(syscall.SIGKILL)
		if t.Failed() && e.logBuf != nil {
			t.Logf("rosetta log (tail):\n%s", testkit.Tail(e.logBuf.String(), 6000))
		}
	})
	return e
}

// start runs `rosetta dev` and waits until its API answers.
func (e *env) start() {
	e.t.Helper()
	cmd := e.command("dev")
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start rosetta: %v", err)
	}
	e.proc = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e.waitHealthy(exited)
	e.exited = exited
}

// spawn runs one service (`rosetta api`, `capture` or `sink`) as its own
// process until the test ends.
func (e *env) spawn(service string) {
	e.t.Helper()
	cmd := e.command(service)
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start rosetta %s: %v", service, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	if service == "api" {
		e.waitHealthy(exited)
	}
}

func (e *env) command(service string) *exec.Cmd {
	cmd := exec.Command(rosettaBin, service)
	cmd.Env = append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+e.pg.DSN(e.configDB),
		"ROSETTA_HTTP_ADDR="+e.httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR="+e.natsAddr,
		"ROSETTA_NATS_URL="+e.natsURL,
		"ROSETTA_DATA_DIR="+e.dataDir,
		"ROSETTA_SECRET_KEY=e2e-test-secret-key-0123456789",
		"ROSETTA_API_TOKEN="+apiToken,
		"ROSETTA_RECONCILE_INTERVAL=2s",
		"ROSETTA_LOG_LEVEL=info",
		"ROSETTA_LOG_FORMAT=text",
	)
	cmd.Env = append(cmd.Env, e.extraEnv...)
	if e.logBuf == nil {
		e.logBuf = &testkit.LogBuffer{}
	}
	cmd.Stdout, cmd.Stderr = e.logBuf, e.logBuf
	return cmd
}

// waitHealthy waits until the API answers /health with 200.
func (e *env) waitHealthy(exited chan error) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			e.proc = nil
			e.t.Fatalf("rosetta exited during start: %v\n%s", err, testkit.Tail(e.logBuf.String(), 4000))
		default:
		}
		if e.healthy() {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rosetta not healthy after 90s\n%s", testkit.Tail(e.logBuf.String(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiToken is the harness's bootstrap admin token (ROSETTA_API_TOKEN).
const apiToken = "e2e-test-api-token-0123456789abcdef"

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

// stop sends sig and waits for the process to exit.
func (e *env) stop(sig syscall.Signal) {
	if e.proc == nil {
		return
	}
	p := e.proc
	e.proc = nil
	syscall.Kill(p.Process.Pid, sig)
	select {
	case <-e.exited:
	case <-time.After(60 * time.Second):
		syscall.Kill(p.Process.Pid, syscall.SIGKILL)
		<-e.exited
	}
}

// api calls the REST API and decodes the JSON answer into out (may be nil).
func (e *env) api(method, path string, body any, out any) int {
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
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// mustAPI is api that fails the test on a non-2xx answer.
func (e *env) mustAPI(method, path string, body any, out any) {
	e.t.Helper()
	var raw json.RawMessage
	code := e.api(method, path, body, &raw)
	if code >= 300 {
		e.t.Fatalf("%s %s: HTTP %d: %s", method, path, code, raw)
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

// createPipeline registers the source and destination databases and a
// pipeline over tables, and starts it. It returns the pipeline id.
func (e *env) createPipeline(tables ...string) int64 {
	e.t.Helper()
	var src, dst, pipe idOnly
	e.mustAPI("POST", "/sources", map[string]any{
		"name": "src", "host": "127.0.0.1", "port": e.pg.Port, "database": e.sourceDB,
		"user": "postgres", "password": "source-secret-pw", "sslmode": "disable",
	}, &src)
	e.mustAPI("POST", "/destinations", map[string]any{
		"name": "dst", "type": "postgres", "config": map[string]any{
			"host": "127.0.0.1", "port": e.pg.Port, "database": e.destDB, "user": "postgres",
			"password": "dest-secret-pw", "schema": "public", "sslmode": "disable",
		},
	}, &dst)
	e.mustAPI("POST", "/pipelines", map[string]any{
		"name": "p", "source_id": src.ID, "destination_ids": []int64{dst.ID}, "tables": tables,
	}, &pipe)
	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	return pipe.ID
}

// tableRows returns every row of table as the text of each source column,
// sorted, so that source and destination compare equal
// exactly when they hold the same values.
func tableRows(t *testing.T, conn *pgx.Conn, table string, cols []string) ([]string, error) {
	t.Helper()
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = "coalesce(" + pgx.Identifier{c}.Sanitize() + "::text, '<NULL>')"
	}
	q := "SELECT concat_ws('|', " + strings.Join(quoted, ", ") + ") FROM " + pgx.Identifier{table}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	slices.Sort(out)
	return out, err
}

// waitConverged waits until every table's rows at the destination equal the
// source's, and fails with the first difference otherwise.
func (e *env) waitConverged(timeout time.Duration, tables map[string][]string) {
	e.t.Helper()
	src := e.pg.Connect(e.t, e.sourceDB)
	dst := e.pg.Connect(e.t, e.destDB)
	deadline := time.Now().Add(timeout)
	var diff string
	for {
		diff = ""
		for table, cols := range tables {
			want, err := tableRows(e.t, src, table, cols)
			if err != nil {
				e.t.Fatalf("read source %s: %v", table, err)
			}
			got, err := tableRows(e.t, dst, table, cols)
			if err != nil {
				diff = fmt.Sprintf("read destination %s: %v", table, err)
				break
			}
			if !slices.Equal(want, got) {
				diff = describeDiff(table, want, got)
				break
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			if e.audit != nil {
				e.t.Logf("published changes of the first differing rows:\n%s", e.audit.dumpRows(diff))
			}
			e.t.Fatalf("destination did not converge in %s: %s", timeout, diff)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func describeDiff(table string, want, got []string) string {
	w := map[string]int{}
	for _, r := range want {
		w[r]++
	}
	g := map[string]int{}
	for _, r := range got {
		g[r]++
	}
	var missing, extra []string
	for r, n := range w {
		if g[r] < n {
			missing = append(missing, r)
		}
	}
	for r, n := range g {
		if w[r] < n {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	clip := func(s []string) []string {
		for i := range s {
			if len(s[i]) > 120 {
				s[i] = s[i][:120] + "…"
			}
		}
		if len(s) > 5 {
			return append(s[:5], fmt.Sprintf("… %d more", len(s)-5))
		}
		return s
	}
	return fmt.Sprintf("%s: source %d rows, destination %d rows; missing or stale at destination %q; extra or stale at destination %q",
		table, len(want), len(got), clip(missing), clip(extra))
}
