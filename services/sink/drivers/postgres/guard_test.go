package postgres

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// TestGuardProperty applies random histories of keys (inserts, updates
// that change and that leave TOASTed columns unchanged, key changes,
// deletes, re-inserts, truncates), shuffled, duplicated and split into
// random batches, to a real destination, and compares every row with the
// version guard's specification applied to the same batches, and with the
// source's final state once the keys the driver reported for completion
// were re-read from the source (guardtest.Scenario.Completion); before
// that, histories whose key change arrived ahead of an older change of
// the old key (guardtest.Delivery.Stale) may differ from the source.
func TestGuardProperty(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	e := newEnv(t, pg, "prop")
	rng := rand.New(rand.NewPCG(14, 1))
	s := guardtest.Generate(rng, "public", 4, 260, 7)
	if testing.Short() {
		s = guardtest.Generate(rng, "public", 2, 60, 7)
	}
	if s.Histories() < 1000 && !testing.Short() {
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
		start := time.Now()
		if err := e.drv.Apply(ctx, batches); err != nil {
			t.Fatalf("apply batch %d: %v", i, err)
		}
		reported.AddIncomplete(e.drv.Incomplete())
		if os.Getenv("GUARD_TIMING") != "" {
			t.Logf("batch %d: %d changes, %v", i, len(b), time.Since(start))
		}
	}
	spec, err := guardtest.Spec(d, s.Tables)
	if err != nil {
		t.Fatal(err)
	}
	want := guardtest.FromSpec(spec)
	stale := 0
	for _, table := range s.Tables {
		got := e.readGuardTable(table)
		if diff := guardtest.Diff(table, got, want[table], nil, 10); len(diff) > 0 {
			t.Errorf("destination differs from the specification:\n%v", diff)
		}
		if diff := guardtest.Diff(table, got, s.Truth[table], d.Stale[table], 10); len(diff) > 0 {
			t.Errorf("destination differs from the source before completion:\n%v", diff)
		}
		stale += len(d.Stale[table])
	}
	batches, completed, err := s.CompletionBatches(reported)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.drv.Apply(ctx, batches); err != nil {
		t.Fatalf("apply completion: %v", err)
	}
	for _, table := range s.Tables {
		if diff := guardtest.Diff(table, e.readGuardTable(table), s.Truth[table], nil, 10); len(diff) > 0 {
			t.Errorf("destination differs from the source after completion:\n%v", diff)
		}
	}
	t.Logf("%d histories, %d batches; %d histories with a key change ahead of its old key's history; %d rows completed",
		s.Histories(), len(d.Batches), stale, completed)
}

func (e *env) readGuardTable(table string) map[string]guardtest.Row {
	e.t.Helper()
	rows, err := e.conn.Query(context.Background(), "SELECT id::text, n::text, body, blob FROM "+ident("prop", table))
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]guardtest.Row{}
	for rows.Next() {
		var id string
		var n, body, blob *string
		if err := rows.Scan(&id, &n, &body, &blob); err != nil {
			e.t.Fatal(err)
		}
		r := guardtest.Row{}
		for c, v := range map[string]*string{"n": n, "body": body, "blob": blob} {
			if v != nil {
				r[c] = *v
			}
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestGuardTwoSinks applies one shuffled delivery through two drivers (two
// sink instances, two connections) at once, each taking random batches:
// updates that leave TOASTed columns unchanged land in any order and
// interleaving, and the destination still ends in the source's state.
func TestGuardTwoSinks(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	e := newEnv(t, pg, "prop")
	other := New(e.drv.cfg, quietLog())
	t.Cleanup(func() { other.Close() })
	rng := rand.New(rand.NewPCG(14, 3))
	s := guardtest.GenerateWithoutMoves(rng, "public", 2, 150, 7)
	d := guardtest.Shuffle(rng, s.Changes, 0.3, 60)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	work := make(chan []contracts.Change)
	errs := make(chan error, 2)
	for _, drv := range []*Driver{e.drv, other} {
		go func() {
			for b := range work {
				batches, err := cdc.Collapse(b)
				if err == nil {
					err = drv.Apply(ctx, batches)
				}
				if err != nil {
					errs <- err
					for range work {
					}
					return
				}
			}
			errs <- nil
		}()
	}
	for _, b := range d.Batches {
		work <- b
	}
	close(work)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range s.Tables {
		if diff := guardtest.Diff(table, e.readGuardTable(table), s.Truth[table], nil, 10); len(diff) > 0 {
			t.Errorf("destination differs from the source:\n%v", diff)
		}
	}
	t.Logf("%d histories, %d batches through two drivers", s.Histories(), len(d.Batches))
}
