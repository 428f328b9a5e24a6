package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestDuckqueryThroughAPI runs `rosetta dev` without ROSETTA_API_TOKEN (it
// keeps a generated token in its data dir) replicating into a DuckDB file
// while rows are written at the source. bin/duckquery, given only the data
// dir and the API's address, must query the file through
// POST /destinations/{id}/query and say so, with counts that only grow;
// once rows stop and Rosetta is stopped, it must say no Rosetta answers,
// open the file itself and count every row.
func TestDuckqueryThroughAPI(t *testing.T) {
	t.Parallel()
	rosetta, cleanup, err := testkit.BuildBinary("../../services/rosetta", "rosetta", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	duckquery, cleanup2, err := testkit.BuildBinary(".", "duckquery", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup2)
	pg := testkit.StartPostgres(t)
	cfgDB := pg.CreateDatabase(t, "cfg")
	srcDB := pg.CreateDatabase(t, "src")
	pg.Exec(t, srcDB, `CREATE TABLE public.items (id bigint PRIMARY KEY, title text)`)
	dataDir := t.TempDir()
	// DuckDB paths must lie in the data dir (or ROSETTA_DUCKDB_ROOTS).
	duckPath := filepath.Join(dataDir, "lake.duckdb")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	env := append(os.Environ(),
		settings.EnvHTTPAddr+"="+httpAddr,
		settings.EnvNATSListen+"="+natsAddr,
		settings.EnvDataDir+"="+dataDir,
		settings.EnvNATSURL+"=",
		settings.EnvAPIToken+"=",
	)
	logs := &testkit.LogBuffer{}
	cmd := exec.Command(rosetta, "dev")
	cmd.Env = append(env,
		"ROSETTA_CONFIG_DSN="+pg.DSN(cfgDB),
		"ROSETTA_SECRET_KEY=duckquery-test-secret-key-0123456789",
		"ROSETTA_LOG_FORMAT=text",
		"ROSETTA_RECONCILE_INTERVAL=2s",
		"ROSETTA_SINK_BATCH_WAIT=50ms",
	)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("rosetta dev output:\n%s", logs.Tail(12000))
		}
	})
	waitUntil := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, d)
			}
			if !stopped {
				select {
				case err := <-exited:
					t.Fatalf("rosetta dev exited: %v", err)
				default:
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	tokenFile := filepath.Join(dataDir, settings.DevTokenFile)
	waitUntil("API up", 90*time.Second, func() bool {
		_, err := os.Stat(tokenFile)
		return err == nil && strings.Contains(logs.String(), "API listening on http://"+httpAddr)
	})
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	call := func(method, path string, body, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(t.Context(), method, "http://"+httpAddr+"/api/v1"+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	var src, dst, pipe struct {
		ID int64 `json:"id"`
	}
	call("POST", "/sources", map[string]any{"name": "shop", "host": pg.Host(), "port": pg.Port,
		"database": srcDB, "user": "postgres", "sslmode": "disable"}, &src)
	call("POST", "/destinations", map[string]any{"name": "lake", "type": "duckdb", "config": map[string]any{"path": duckPath}}, &dst)
	call("POST", "/pipelines", map[string]any{"name": "items", "source_id": src.ID,
		"destination_ids": []int64{dst.ID}, "tables": []string{"public.items"}}, &pipe)
	call("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)

	// Rows go in, one every 20ms, while duckquery reads.
	conn := pg.Connect(t, srcDB)
	var written atomic.Int64
	ctx, cancelWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := int64(1); ctx.Err() == nil; i++ {
			if _, err := conn.Exec(ctx, "INSERT INTO public.items VALUES ($1, $2)", i, fmt.Sprintf("row %d", i)); err != nil {
				return
			}
			written.Store(i)
			time.Sleep(20 * time.Millisecond) // paces the writer; nothing waits on it
		}
	}()
	t.Cleanup(func() { cancelWriter(); <-writerDone })

	// duckquery gets the API's address and the data dir, no token: it
	// finds the token in the data dir. -nats "" keeps it off NATS, so an
	// answer can only come through the API.
	query := func(extra ...string) (rows string, stderr string, err error) {
		args := append(extra, duckPath, "SELECT count(*) FROM main.items")
		c := exec.Command(duckquery, args...)
		c.Env = env
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		err = c.Run()
		return strings.TrimSpace(out.String()), errOut.String(), err
	}
	last := int64(0)
	reads := 0
	waitUntil("duckquery reads a growing count through the API", 90*time.Second, func() bool {
		out, stderr, err := query("-nats", "")
		if err != nil {
			// Before the first batch there is no file, then no table.
			if !strings.Contains(stderr, "no file yet") && !strings.Contains(stderr, "items") {
				t.Fatalf("duckquery: %v\n%s", err, stderr)
			}
			return false
		}
		if !strings.Contains(stderr, fmt.Sprintf("queried destination %d (lake) through the Rosetta API at http://%s", dst.ID, httpAddr)) {
			t.Fatalf("duckquery did not say it went through the API:\n%s", stderr)
		}
		n, err := strconv.ParseInt(out, 10, 64)
		// +1: the row in flight may be committed before the writer counts it.
		if err != nil || n < last || n > written.Load()+1 {
			t.Fatalf("count %q after %d, with %d written", out, last, written.Load())
		}
		if n > last {
			reads++
		}
		last = n
		return reads >= 3
	})
	cancelWriter()
	<-writerDone
	// The source's count, not the writer's: an INSERT cancelled in flight
	// may still have committed.
	var total int64
	if err := pg.Connect(t, srcDB).QueryRow(context.Background(), "SELECT count(*) FROM public.items").Scan(&total); err != nil {
		t.Fatal(err)
	}
	waitUntil("every row through the API", 60*time.Second, func() bool {
		out, _, err := query("-nats", "")
		return err == nil && out == strconv.FormatInt(total, 10)
	})

	stop()
	out, stderr, err := query()
	if err != nil {
		t.Fatalf("duckquery with Rosetta stopped: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "no Rosetta API at http://"+httpAddr) || !strings.Contains(stderr, "opening "+duckPath+" read-only") {
		t.Fatalf("duckquery did not say it opened the file itself:\n%s", stderr)
	}
	if out != strconv.FormatInt(total, 10) {
		t.Fatalf("count %q from the file, want %d", out, total)
	}
}
