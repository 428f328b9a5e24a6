package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// verifyResult is the part of a result of POST /pipelines/{id}/verify the
// test reads.
type verifyResult struct {
	Table           string `json:"table"`
	DestinationID   int64  `json:"destination_id"`
	DestinationType string `json:"destination_type"`
	SourceRows      int64  `json:"source_rows"`
	DestinationRows int64  `json:"destination_rows"`
	Missing         int64  `json:"missing"`
	Extra           int64  `json:"extra"`
	Differing       int64  `json:"differing"`
	Status          string `json:"status"`
	Error           string `json:"error"`
}

type verifyAnswer struct {
	Equal     bool           `json:"equal"`
	Results   []verifyResult `json:"results"`
	Backfills []struct {
		ID int64 `json:"id"`
	} `json:"backfills"`
}

// TestConfigEventsAndVerify runs `rosetta dev` with the reconcile poll far
// above the test's length, so that every pipeline change reaches the
// running services through its config event alone: creating and starting
// a pipeline must get rows to a PostgreSQL and a DuckDB destination, and
// pausing it must release the DuckDB file. On the way, `rosetta verify`
// (API and CLI) finds both destinations equal while the sink holds the
// DuckDB file, finds the differences planted in each, and its backfill
// repairs the missing and differing rows.
func TestConfigEventsAndVerify(t *testing.T) {
	t.Parallel()
	bin, cleanup, err := testkit.BuildBinary(".", "rosetta", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	pg := testkit.StartPostgres(t)
	cfgDB := pg.CreateDatabase(t, "cfg")
	srcDB := pg.CreateDatabase(t, "src")
	dstDB := pg.CreateDatabase(t, "dst")
	pg.Exec(t, srcDB, `CREATE TABLE public.items (id bigint PRIMARY KEY, title text, price numeric(8,2), at timestamptz, ok boolean);
		INSERT INTO public.items SELECT g, 'row ' || g, g * 0.25, '2026-01-01'::timestamptz + g * interval '1 minute', g % 3 = 0
		FROM generate_series(1, 2000) g`)
	dataDir := t.TempDir()
	// Inside the data dir: the API confines DuckDB files to it.
	duckPath := filepath.Join(dataDir, "dest.duckdb")

	httpAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	env := append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+pg.DSN(cfgDB),
		"ROSETTA_HTTP_ADDR="+httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR="+natsAddr,
		"ROSETTA_NATS_URL=",
		"ROSETTA_LOG_FORMAT=text",
		"ROSETTA_SECRET_KEY=verify-test-secret-key-0123456789",
		"ROSETTA_API_TOKEN="+testAPIToken,
		// Shared with the CLI: it finds the embedded NATS's tap
		// credentials there, to read the DuckDB file through its holder.
		"ROSETTA_DATA_DIR="+dataDir,
	)
	dev := startDev(t, bin, append(env,
		// Far above the test's length: only config events can make the
		// services react in time.
		"ROSETTA_RECONCILE_INTERVAL=1h",
		"ROSETTA_SINK_BATCH_WAIT=50ms",
	), httpAddr)
	waitUntil := dev.waitUntil

	call := apiCaller(t, "http://"+httpAddr+"/api/v1")
	var src, pgDest, duckDest, pipe struct {
		ID int64 `json:"id"`
	}
	call("POST", "/sources", map[string]any{"name": "shop", "host": pg.Host(), "port": pg.Port,
		"database": srcDB, "user": "postgres", "sslmode": "disable"}, &src)
	call("POST", "/destinations", map[string]any{"name": "warehouse", "type": "postgres", "config": map[string]any{
		"host": pg.Host(), "port": pg.Port, "database": dstDB, "user": "postgres", "sslmode": "disable"}}, &pgDest)
	call("POST", "/destinations", map[string]any{"name": "lake", "type": "duckdb", "config": map[string]any{"path": duckPath}}, &duckDest)
	call("POST", "/pipelines", map[string]any{"name": "items", "source_id": src.ID,
		"destination_ids": []int64{pgDest.ID, duckDest.ID}, "tables": []string{"public.items"}}, &pipe)
	call("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)

	dst := pg.Connect(t, dstDB)
	ctx := context.Background()
	pgCount := func(where string) int {
		var n int
		if err := dst.QueryRow(ctx, "SELECT count(*) FROM public.items "+where).Scan(&n); err != nil {
			return -1 // not created yet
		}
		return n
	}
	waitUntil("snapshot rows at the postgres destination", 90*time.Second, func() bool { return pgCount("") == 2000 })
	srcConn := pg.Connect(t, srcDB)
	if _, err := srcConn.Exec(ctx, `INSERT INTO public.items SELECT g, 'live ' || g, g, now(), true FROM generate_series(2001, 2100) g;
		UPDATE public.items SET title = 'updated' WHERE id <= 10`); err != nil {
		t.Fatal(err)
	}
	waitUntil("streamed rows at the postgres destination", 60*time.Second, func() bool {
		return pgCount("") == 2100 && pgCount("WHERE title = 'updated'") == 10
	})

	verifyPath := fmt.Sprintf("/pipelines/%d/verify", pipe.ID)
	byType := func(a verifyAnswer) map[string]verifyResult {
		out := map[string]verifyResult{}
		for _, r := range a.Results {
			out[r.DestinationType] = r
		}
		return out
	}
	// The DuckDB sink may still be applying the streamed rows.
	var a verifyAnswer
	waitUntil("verify finds both destinations equal", 60*time.Second, func() bool {
		call("POST", verifyPath, map[string]any{"chunk_rows": 300}, &a)
		return a.Equal
	})
	for typ, r := range byType(a) {
		if r.SourceRows != 2100 || r.DestinationRows != 2100 || r.Status != "equal" {
			t.Fatalf("%s: %+v", typ, r)
		}
	}
	runCLI := func(args ...string) (string, int) {
		t.Helper()
		c := exec.Command(bin, append([]string{"verify", "-q"}, args...)...)
		c.Env = env
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("rosetta verify: %v", err)
		}
		return string(out), 0
	}
	if out, code := runCLI("items"); code != 0 || strings.Count(out, " equal") != 2 {
		t.Fatalf("rosetta verify of equal tables: exit %d\n%s", code, out)
	}

	// Pause (a config event: the poll would take an hour), which releases
	// the DuckDB file, and plant a changed value, a missing row and an
	// extra row in each destination.
	call("POST", fmt.Sprintf("/pipelines/%d/pause", pipe.ID), nil, nil)
	var duck *sql.DB
	waitUntil("the paused sink releases the duckdb file", 60*time.Second, func() bool {
		db, err := sql.Open("duckdb", duckPath)
		if err == nil {
			if err = db.Ping(); err == nil {
				duck = db
				return true
			}
			db.Close()
		}
		return false
	})
	if _, err := duck.Exec(`UPDATE main.items SET price = 99 WHERE id = 7; DELETE FROM main.items WHERE id = 1500;
		INSERT INTO main.items (id, title, _rosetta_lsn, _rosetta_seq) VALUES (5000, 'extra', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	duck.Close()
	if _, err := dst.Exec(ctx, `UPDATE public.items SET ok = NOT ok WHERE id = 42; DELETE FROM public.items WHERE id IN (1, 2050);
		INSERT INTO public.items (id, title, _rosetta_lsn, _rosetta_seq) VALUES (0, 'extra', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	call("POST", verifyPath, map[string]any{"chunk_rows": 300}, &a)
	got := byType(a)
	if r := got["postgres"]; a.Equal || r.Missing != 2 || r.Extra != 1 || r.Differing != 1 || r.Status != "different" {
		t.Fatalf("postgres destination with planted differences: %+v", r)
	}
	if r := got["duckdb"]; r.Missing != 1 || r.Extra != 1 || r.Differing != 1 || r.Status != "different" {
		t.Fatalf("duckdb destination with planted differences: %+v", r)
	}
	out, code := runCLI(fmt.Sprint(pipe.ID))
	if code != 3 || !strings.Contains(out, "missing   1500") || !strings.Contains(out, "differing 42") || !strings.Contains(out, "extra     0") {
		t.Fatalf("rosetta verify of differing tables: exit %d\n%s", code, out)
	}
	t.Logf("rosetta verify:\n%s", out)

	// Start again and hand the differing keys to backfills: the missing
	// and differing rows come back; the extra rows stay (a backfill reads
	// the source, where they are not).
	call("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	call("POST", verifyPath, map[string]any{"backfill": true}, &a)
	if len(a.Backfills) != 2 {
		t.Fatalf("backfills created: %+v", a.Backfills)
	}
	waitUntil("backfills repair the missing and differing rows", 90*time.Second, func() bool {
		call("POST", verifyPath, nil, &a)
		got := byType(a)
		return got["postgres"].Missing+got["postgres"].Differing+got["duckdb"].Missing+got["duckdb"].Differing == 0
	})
	if got := byType(a); got["postgres"].Extra != 1 || got["duckdb"].Extra != 1 {
		t.Fatalf("after the backfills: %+v", a.Results)
	}
}
