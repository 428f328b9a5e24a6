package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/capture"
	"github.com/rosettacdc/rosetta/services/sink"
)

// TestBackfillTargetsDestinations runs capture, sink and the worker
// in-process for a pipeline with two PostgreSQL destinations A and B and
// no initial snapshot. A backfill with destination_ids [A] must write its
// rows to A only; live changes, before and after it, reach both.
func TestBackfillTargetsDestinations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testkit.StartPostgres(t)
	box, err := secrets.NewBox("backfill-targets-key-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	store, err := configstore.Open(ctx, pg.DSN(pg.CreateDatabase(t, "cfg")), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sourceDB, dbA, dbB := pg.CreateDatabase(t, "src"), pg.CreateDatabase(t, "dsta"), pg.CreateDatabase(t, "dstb")
	pg.Exec(t, sourceDB, `CREATE TABLE items (id bigint PRIMARY KEY, name text);
		INSERT INTO items SELECT g, 'old ' || g FROM generate_series(1, 1000) g`)

	n := testkit.StartNATS(t)
	nc, js := n.Connect(t)
	suffix := testkit.RandomSuffix()
	src, err := store.CreateSource(ctx, configstore.SourceInput{Name: "src", Host: pg.Host(), Port: pg.Port, Database: sourceDB,
		User: "postgres", Publication: "pub_" + suffix, Slot: "slot_" + suffix, SSLMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	var dests []configstore.Destination
	for _, db := range []string{dbA, dbB} {
		d, err := store.CreateDestination(ctx, configstore.DestinationInput{Name: db, Type: "postgres", Config: map[string]any{
			"host": pg.Host(), "port": pg.Port, "database": db, "user": "postgres", "schema": "public", "sslmode": "disable"}})
		if err != nil {
			t.Fatal(err)
		}
		dests = append(dests, d)
	}
	a, b := dests[0], dests[1]
	p, err := store.CreatePipeline(ctx, configstore.PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: []int64{a.ID, b.ID},
		Tables: []string{"public.items"}})
	if err != nil {
		t.Fatal(err)
	}
	// Started without snapshot jobs (as "snapshot": false does): the
	// existing rows reach a destination only through the backfill.
	if _, err = store.SetPipelineStatus(ctx, p.ID, configstore.StatusStart); err != nil {
		t.Fatal(err)
	}

	runCtx, stopAll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stopAll(); wg.Wait() })
	log := quietLog()
	ccfg := capture.DefaultConfig()
	ccfg.ReconcileInterval = time.Second
	scfg := sink.DefaultConfig()
	scfg.ReconcileInterval = time.Second
	wcfg := testConfig()
	for _, run := range []func(context.Context) error{
		capture.NewManager(ccfg, store, js, log).Run,
		sink.NewManager(scfg, store, js, log).Run,
		New(wcfg, store, nc, log).Run,
	} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(runCtx) }()
	}

	source := pg.Connect(t, sourceDB)
	connA, connB := pg.Connect(t, dbA), pg.Connect(t, dbB)
	exec := func(q string) {
		t.Helper()
		if _, err := source.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// A live change reaching both destinations shows capture and both
	// sinks follow the table. An insert made before capture created its
	// slot is not captured, so insert until one arrives.
	hasRow := func(conn *pgx.Conn, id int64, name string, within time.Duration) bool {
		deadline := time.Now().Add(within)
		for {
			var got string
			if err := conn.QueryRow(ctx, `SELECT name FROM items WHERE id = $1`, id).Scan(&got); err == nil && got == name {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitRow := func(conn *pgx.Conn, id int64, name string) {
		t.Helper()
		if !hasRow(conn, id, name, 90*time.Second) {
			t.Fatalf("row %d = %q did not reach the destination", id, name)
		}
	}
	first := int64(5001) // the first live insert captured
	for ; ; first++ {
		if first > 5060 {
			t.Fatal("no live insert reached destination A")
		}
		name := fmt.Sprintf("live %d", first)
		exec(fmt.Sprintf(`INSERT INTO items VALUES (%d, '%s')`, first, name))
		if hasRow(connA, first, name, 2*time.Second) {
			waitRow(connB, first, name)
			break
		}
	}

	// The backfill of ids 1..500, for A only.
	j, err := store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: p.ID, Table: "public.items", Kind: configstore.JobKindBackfill,
		DestinationIDs: []int64{a.ID}, BatchSize: 64,
		Filters: []configstore.BackfillFilter{{Column: "id", Op: "<=", Value: json.RawMessage(`500`)}}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		j, err = store.GetBackfillJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == configstore.JobCompleted {
			break
		}
		if j.Status == configstore.JobFailed || time.Now().After(deadline) {
			t.Fatalf("backfill: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j.RowsCopied != 500 {
		t.Fatalf("rows_copied %d, want 500", j.RowsCopied)
	}

	// Live changes after it reach both. Each destination's consumer
	// delivers in stream order, so once B has the last of them B has
	// also seen (and skipped) every backfill row published before.
	exec(`UPDATE items SET name = 'changed' WHERE id = 7; INSERT INTO items VALUES (9001, 'after')`)
	for _, conn := range []*pgx.Conn{connA, connB} {
		waitRow(conn, 9001, "after")
	}
	waitRow(connA, 7, "changed")
	count := func(conn *pgx.Conn, where string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM items WHERE `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := count(connA, "id <= 500 AND name = 'old ' || id"); got != 499 {
		t.Errorf("destination A has %d backfilled rows unchanged since, want 499 (ids 1..500 but 7)", got)
	}
	if got := count(connA, "id BETWEEN 501 AND 1000"); got != 0 {
		t.Errorf("destination A has %d rows outside the backfill's filter", got)
	}
	// B got only the live changes: the update of row 7 (a full row under
	// the default replica identity, so B has it now) and the inserts.
	if got := count(connB, "id <= 1000 AND id <> 7"); got != 0 {
		t.Errorf("destination B has %d backfilled rows; the backfill was for destination A only", got)
	}
	live := fmt.Sprintf("id >= %d", first)
	var want int
	if err := source.QueryRow(ctx, `SELECT count(*) FROM items WHERE `+live).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if a, b := count(connA, live), count(connB, live); want != 2 || a != want || b != want {
		t.Errorf("live inserts: source %d (want 2), A %d, B %d", want, a, b)
	}
}
