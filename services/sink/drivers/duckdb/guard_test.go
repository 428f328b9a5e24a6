package duckdb

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// TestGuardProperty applies random histories of keys (inserts, updates
// that change and that leave TOASTed columns unchanged, key changes,
// deletes, re-inserts, truncates), shuffled, duplicated and split into
// random batches, to a real destination, and compares every row with the
// version guard's specification applied to the same batches, and with the
// source's final state (guardtest.Delivery.Stale names the histories
// where only the specification can be asked for); then, once the keys the
// driver reported for completion were re-read from the source
// (guardtest.Scenario.Completion), every row equals the source's.
func TestGuardProperty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]any{"release_after": "0s"})
	rng := rand.New(rand.NewPCG(14, 7))
	s := guardtest.Generate(rng, "public", 4, 260, 7)
	if s.Histories() < 1000 {
		t.Fatalf("only %d histories", s.Histories())
	}
	d := guardtest.Shuffle(rng, s.Changes, 0.3, 300)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reported := guardtest.Reports{}
	for i, b := range d.Batches {
		batches, err := cdc.Collapse(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.drv.Apply(ctx, batches); err != nil {
			t.Fatalf("apply batch %d: %v", i, err)
		}
		reported.AddIncomplete(e.drv.Incomplete())
	}
	if err := e.drv.Close(); err != nil {
		t.Fatal(err)
	}
	spec, err := guardtest.Spec(d, s.Tables)
	if err != nil {
		t.Fatal(err)
	}
	want := guardtest.FromSpec(spec)
	db := e.db()
	stale := 0
	for _, table := range s.Tables {
		got := readGuardTable(t, db, table)
		if diff := guardtest.Diff(table, got, want[table], nil, 10); len(diff) > 0 {
			t.Errorf("destination differs from the specification:\n%v", diff)
		}
		if diff := guardtest.Diff(table, got, s.Truth[table], d.Stale[table], 10); len(diff) > 0 {
			t.Errorf("destination differs from the source:\n%v", diff)
		}
		stale += len(d.Stale[table])
	}
	db.Close()
	batches, completed, err := s.CompletionBatches(reported)
	if err != nil {
		t.Fatal(err)
	}
	// A second driver on the same file: the first one is closed.
	completer := New(e.drv.cfg, quietLog())
	if err := completer.Apply(ctx, batches); err != nil {
		t.Fatalf("apply completion: %v", err)
	}
	if err := completer.Close(); err != nil {
		t.Fatal(err)
	}
	after := e.db()
	defer after.Close()
	for _, table := range s.Tables {
		if diff := guardtest.Diff(table, readGuardTable(t, after, table), s.Truth[table], nil, 10); len(diff) > 0 {
			t.Errorf("destination differs from the source after completion:\n%v", diff)
		}
	}
	t.Logf("%d histories, %d batches; %d histories with a key change ahead of its old key's history; %d rows completed",
		s.Histories(), len(d.Batches), stale, completed)
}

func readGuardTable(t *testing.T, db *sql.DB, table string) map[string]guardtest.Row {
	t.Helper()
	rows, err := db.Query("SELECT CAST(id AS VARCHAR), CAST(n AS VARCHAR), body, blob FROM " + ident("sink", table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]guardtest.Row{}
	for rows.Next() {
		var id string
		var n, body, blob sql.NullString
		if err := rows.Scan(&id, &n, &body, &blob); err != nil {
			t.Fatal(err)
		}
		r := guardtest.Row{}
		for c, v := range map[string]sql.NullString{"n": n, "body": body, "blob": blob} {
			if v.Valid {
				r[c] = v.String
			}
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
