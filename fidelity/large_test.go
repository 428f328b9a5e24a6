package fidelity

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLargeTransaction replicates one transaction of 1,000,000 inserted
// rows, next to a rolled-back transaction of 200,000 rows and a
// transaction that rolls back a subtransaction of 100,000, and reports the
// rosetta process's peak resident memory (VmHWM: capture, the embedded
// NATS server and both sinks in one process). It takes minutes, so it runs
// only with ROSETTA_FIDELITY_LARGE=1; the rows' count,
// sum and ordered md5 must be equal at both destinations.
func TestLargeTransaction(t *testing.T) {
	if os.Getenv("ROSETTA_FIDELITY_LARGE") == "" {
		t.Skip("set ROSETTA_FIDELITY_LARGE=1 to replicate a 1M-row transaction (takes minutes)")
	}
	const rows = 1_000_000
	started := time.Now()
	e := newEnv(t)
	src := e.connect(e.sourceDB)
	e.exec(src, "CREATE TABLE fid_big (id bigint PRIMARY KEY, v text, n numeric)")
	e.start()
	duckPath := filepath.Join(e.dataDir, "large.duckdb")
	// The DuckDB file is kept open between batches (the driver's defaults),
	// not released after each one as in TestFidelity: releasing checkpoints
	// the file every batch, which dominates at this size.
	// ROSETTA_FIDELITY_LARGE=pg leaves DuckDB out, to see the process's
	// memory without DuckDB's buffer pool in it.
	dests := []int64{e.createPostgresDestination("pg")}
	withDuck := os.Getenv("ROSETTA_FIDELITY_LARGE") != "pg"
	if withDuck {
		var duck idOnly
		e.mustAPI("POST", "/destinations", map[string]any{"name": "duck", "type": "duckdb", "config": map[string]any{
			"path": duckPath, "schema": "main"}}, &duck)
		dests = append(dests, duck.ID)
	}
	e.createPipeline("large", dests, "public.fid_big")
	e.waitCapturing()
	e.exec(src, "BEGIN; INSERT INTO fid_big SELECT g, md5(g::text), g * 1.5 FROM generate_series(-200000, -1) g; ROLLBACK")
	e.exec(src, fmt.Sprintf(`BEGIN; INSERT INTO fid_big SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, %d) g;
		SAVEPOINT s; INSERT INTO fid_big SELECT g, 'rolled back', 0 FROM generate_series(%d, %d) g; ROLLBACK TO s; COMMIT`, rows, rows+1, rows+100_000))
	committed := time.Now()
	t.Logf("1M-row transaction committed at the source after %s", committed.Sub(started).Round(time.Millisecond))

	const summary = "SELECT count(*), coalesce(sum(id), 0), md5(coalesce(string_agg(id::text || '|' || v || '|' || n::text, ',' ORDER BY id), ''))"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var n, sum int64
	var md5 string
	if err := src.QueryRow(ctx, summary+" FROM fid_big").Scan(&n, &sum, &md5); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d/%d/%s", n, sum, md5)
	if n != rows {
		t.Fatalf("source has %d rows, want %d", n, rows)
	}
	dst := e.connect(e.destDB)
	var (
		peak             int64
		pgGot, duckGot   string
		pgErr, duckErr   error
		pgDone, duckDone time.Duration
	)
	deadline := time.Now().Add(15 * time.Minute)
	for pgGot != want || duckGot != want {
		peak = max(peak, vmHWM(t, e.proc.Process.Pid))
		if pgGot != want {
			var pn, s int64
			var m string
			if pgErr = dst.QueryRow(ctx, "SELECT count(*) FROM fid_big").Scan(&pn); pgErr == nil && pn == rows {
				if pgErr = dst.QueryRow(ctx, summary+" FROM fid_big").Scan(&pn, &s, &m); pgErr == nil {
					pgGot, pgDone = fmt.Sprintf("%d/%d/%s", pn, s, m), time.Since(committed)
				}
			} else if pgErr == nil {
				pgGot = fmt.Sprintf("%d rows", pn)
			}
		}
		if !withDuck {
			duckGot = want
		}
		if duckGot != want {
			duckErr = duckQuery(ctx, duckPath, func(db *sql.DB) error {
				var dn, s int64
				var m string
				if err := db.QueryRowContext(ctx, "SELECT count(*) FROM main.fid_big").Scan(&dn); err != nil || dn != rows {
					duckGot = fmt.Sprintf("%d rows", dn)
					return err
				}
				err := db.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(id), 0), md5(coalesce(string_agg(CAST(id AS VARCHAR) || '|' || v || '|' || CAST(n AS VARCHAR), ',' ORDER BY id), '')) FROM main.fid_big").Scan(&dn, &s, &m)
				duckGot, duckDone = fmt.Sprintf("%d/%d/%s", dn, s, m), time.Since(committed)
				return err
			})
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 minutes: postgres %q (%v), duckdb %q (%v), want %q", pgGot, pgErr, duckGot, duckErr, want)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("postgres equal %s after the commit, duckdb %s (0s: not in the run)", pgDone.Round(time.Second), duckDone.Round(time.Second))
	peak = max(peak, vmHWM(t, e.proc.Process.Pid))
	t.Logf("1,000,000 rows equal at the destinations (DuckDB included: %v) %s after the commit; rosetta peak RSS (VmHWM) %d MiB",
		withDuck, time.Since(committed).Round(time.Second), peak>>20)
}

// vmHWM reads a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read peak memory: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
