package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestCollectBounds runs tombstone collection through the manager's runner
// with the sink's real bounds (config store, Redis dead-letter queue) and a
// PostgreSQL destination: nothing is collected before capture reports a
// confirmed position, a dead letter holds the bound at its version (so it
// still applies when replayed after collection), a running backfill stops
// collection of its table, and once nothing holds it back the tombstones go
// while the changes they guarded against stay refused.
func TestCollectBounds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testkit.StartPostgres(t)
	cfg := dlq.DefaultConfig()
	cfg.Prefix = "collect" + testkit.RandomSuffix()
	f := newDLQFixture(t, pg, cfg)

	f.change(contracts.OpCreate, 1, "one", "1.00", 1)  // 0x1010
	f.change(contracts.OpCreate, 2, "two", "2.00", -1) // 0x1020: CHECK (qty >= 0), dead-lettered
	f.change(contracts.OpCreate, 3, "three", "3.00", 3)
	f.delete(3) // 0x1040
	f.change(contracts.OpCreate, 4, "four", "4.00", 4)
	f.delete(4) // 0x1060
	stale := []int{3, 4}
	f.start()
	waitFor(t, "every change settled", func() bool {
		info := f.consumer()
		return info.AckFloor.Stream == 6 && info.NumAckPending == 0 && info.NumPending == 0
	})
	if got, want := f.rows(), f.want(2); got != want {
		t.Fatalf("destination = %s, want %s", got, want)
	}
	ref, ok := f.m.runnerFor(pairKey{f.p.ID, f.dst.ID})
	if !ok {
		t.Fatal("no runner")
	}
	collect := func() sinkrunner.TableCollection {
		t.Helper()
		out, err := ref.runner.Collect(ctx)
		if err != nil || len(out) != 1 {
			t.Fatalf("Collect = %+v, %v", out, err)
		}
		return out[0]
	}
	tombs := func() int {
		t.Helper()
		var n int
		if err := f.dest.QueryRow(ctx, `SELECT count(*) FROM _rosetta.`+
			`"`+tombName(t, f)+`"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	if tc := collect(); tc.Skipped == "" || tombs() != 2 {
		t.Fatalf("collected before capture reported a confirmed position: %+v", tc)
	}
	if err := f.store.SetSourceState(ctx, configstore.SourceState{SourceID: f.src.ID, State: "streaming",
		ConfirmedLSN: contracts.FormatLSN(0x2000), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	held, heldTombs := collect(), tombs()

	// A backfill that may still publish stops collection of its table.
	if _, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.p.ID, Table: "app.items"}); err != nil {
		t.Fatal(err)
	}
	job, ok, err := f.store.ClaimBackfillJob(ctx, "test", time.Minute)
	if err != nil || !ok {
		t.Fatalf("claim backfill job: %v, %v", ok, err)
	}
	if tc := collect(); !strings.Contains(tc.Skipped, "backfill") {
		t.Fatalf("collected while a backfill runs: %+v", tc)
	}
	if err := f.store.FinishBackfillJob(ctx, job.ID, "test", configstore.JobCompleted, ""); err != nil {
		t.Fatal(err)
	}

	// The dead letter replays once the destination takes it: the collect
	// floor stayed at its version.
	f.fixDestination()
	f.latest[2] = "2|two|2.00|-1"
	if r := f.recover(configstore.DLQRecoveryInput{}); r.Status != configstore.RecoveryCompleted || r.Replayed != 1 {
		t.Fatalf("recovery = %+v", r)
	}
	if got, want := f.rows(), f.want(); got != want {
		t.Fatalf("destination after replaying the dead letter = %s, want %s", got, want)
	}
	if want := (contracts.Version{LSN: 0x1020, Seq: 1}); held.Skipped != "" || held.Bound != want || held.Result.Floor != want ||
		held.Result.Collected != 0 || held.Result.Remaining != 2 || heldTombs != 2 {
		t.Fatalf("collection with a dead letter at %v = %+v (tombstones left %d)", want, held, heldTombs)
	}

	// Nothing holds the bound back now: capture's position.
	tc := collect()
	if want := (contracts.Version{LSN: 0x2000}); tc.Bound != want || tc.Result.Collected != 2 || tc.Result.Remaining != 0 || tombs() != 0 {
		t.Fatalf("collection at capture's position = %+v (tombstones left %d)", tc, tombs())
	}
	// The inserts the tombstones guarded against, delivered again: still
	// refused.
	for _, id := range stale {
		f.lsn = map[int]uint64{3: 0x1030, 4: 0x1050}[id] - 0x10 // their first versions
		f.change(contracts.OpCreate, id, "stale", "0.00", 0)
		delete(f.latest, id)
	}
	waitFor(t, "the stale inserts settled", func() bool {
		info := f.consumer()
		return info.AckFloor.Stream == 8 && info.NumAckPending == 0 && info.NumPending == 0
	})
	if got, want := f.rows(), f.want(); got != want {
		t.Fatalf("destination after stale inserts = %s, want %s", got, want)
	}
}

// delete publishes a delete of app.items id with a new version.
func (f *dlqFixture) delete(id int) {
	f.t.Helper()
	f.lsn += 0x10
	c := contracts.Change{
		V: contracts.EnvelopeVersion, Op: contracts.OpDelete,
		Source: contracts.Source{SourceID: f.src.ID, Schema: "app", Table: "items", CommitLSN: contracts.FormatLSN(f.lsn), Seq: 1},
		Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"},
			{Name: "amount", Type: "numeric", BaseType: "numeric"}, {Name: "qty", Type: "integer", BaseType: "integer"}},
		Key: contracts.Row{"id": json.RawMessage(fmt.Sprint(id))},
	}
	body, _ := json.Marshal(c)
	if _, err := f.js.Publish(context.Background(), contracts.ChangeSubject(f.src.ID, "app", "items", 0), body); err != nil {
		f.t.Fatal(err)
	}
	delete(f.latest, id)
}

// tombName is the tombstone table of one.items, from the registry.
func tombName(t *testing.T, f *dlqFixture) string {
	t.Helper()
	var name string
	if err := f.dest.QueryRow(context.Background(), `SELECT tombstone_table FROM _rosetta.tables
		WHERE schema_name = 'one' AND table_name = 'items'`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
