package backfill

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/capture"
)

// TestSnapshotRowEqualsCapturedRow checks that a snapshot row carries the
// key, after and columns capture emits for the same row, over types whose
// text form depends on session settings (timestamps, intervals, floats,
// bytea, money) or on the output function (char(n), inet, arrays, json).
func TestSnapshotRowEqualsCapturedRow(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	f := newFixture(t, pg, 0)
	ctx := context.Background()
	pg.Exec(t, f.sourceDB, `CREATE TYPE mood AS ENUM ('sad', 'ok');
		ALTER TABLE items ADD COLUMN j jsonb, ADD COLUMN b bytea, ADD COLUMN iv interval, ADD COLUMN f8 float8, ADD COLUMN f4 real,
		ADD COLUMN d date, ADD COLUMN ch char(5), ADD COLUMN ip inet, ADD COLUMN arr int[], ADD COLUMN m money, ADD COLUMN u uuid,
		ADD COLUMN mo mood, ADD COLUMN t2 time with time zone, ADD COLUMN g bigint GENERATED ALWAYS AS (id * 2) STORED;
		ALTER DATABASE `+f.sourceDB+` SET timezone TO 'America/New_York';
		ALTER DATABASE `+f.sourceDB+` SET datestyle TO 'SQL, DMY';
		ALTER DATABASE `+f.sourceDB+` SET intervalstyle TO 'iso_8601';
		ALTER DATABASE `+f.sourceDB+` SET extra_float_digits TO 0`)
	pg.Exec(t, f.sourceDB, `INSERT INTO items (id, name, amount, flag, at, j, b, iv, f8, f4, d, ch, ip, arr, m, u, mo, t2) VALUES
		(7, 'a "quoted" name\n', 12.5, true, '2024-03-10 01:02:03.456789+05', '{"b": [1, 2.50], "a": null}', '\xdeadbeef',
		 '1 year 2 mons 3 days 04:05:06.5', 0.1, 1.1, '2024-02-29', 'ab', '192.168.1.5', '{1,NULL,3}', 12.34,
		 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ok', '10:11:12+02')`)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	ccfg := capture.DefaultConfig()
	ccfg.ReconcileInterval = time.Second
	go func() { defer close(done); _ = capture.NewManager(ccfg, f.store, f.js, quietLog()).Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	var captured []contracts.Change
	deadline := time.Now().Add(30 * time.Second)
	for len(captured) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("capture published nothing")
		}
		time.Sleep(100 * time.Millisecond)
		captured = f.published()
	}
	j, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items",
		Filters: []configstore.BackfillFilter{{Column: "id", Op: "=", Value: json.RawMessage(`7`)}}})
	if err != nil {
		t.Fatal(err)
	}
	f.start(testConfig())
	f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
	all := f.published()
	if len(all) != 2 || all[0].Op != contracts.OpCreate || all[1].Op != contracts.OpRead {
		t.Fatalf("stream: %s", mustJSON(all))
	}
	c, r := all[0], all[1]
	for name, pair := range map[string][2]any{"key": {c.Key, r.Key}, "after": {c.After, r.After}, "columns": {c.Columns, r.Columns},
		"database": {c.Source.Database, r.Source.Database}} {
		if a, b := mustJSON(pair[0]), mustJSON(pair[1]); a != b {
			t.Errorf("%s differs:\ncapture:  %s\nsnapshot: %s", name, a, b)
		}
	}
	cv, _ := c.Version()
	rv, _ := r.Version()
	if !cv.Less(rv) || r.Source.Seq != 0 || !r.Source.Snapshot {
		t.Errorf("versions: capture %+v snapshot %+v", c.Source, r.Source)
	}
	if _, ok := r.After["g"]; ok {
		t.Errorf("generated column published: %s", mustJSON(r.After))
	}
}
