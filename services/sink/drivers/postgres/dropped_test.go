package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestDroppedColumns applies a source DROP COLUMN under both policies:
// a batch holding changes from before and after the drop, then a batch
// from after it. Under "keep" the column stays, rows not written since
// the drop keep their value and every row written after it (insert or
// update, whatever the batching) holds NULL; under "drop" the column is
// gone. A column a user added at the destination is never touched, and a
// table created by hand (whose columns carry no mark) is treated like one
// the driver created once a batch has listed its source columns.
func TestDroppedColumns(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	f := cdctest.NewDroppedB(false)
	ins1, upd1, upd2 := f.InsBefore, f.UpdBefore, f.WriteAfter
	// run applies the scenario; handMade creates the table first, as a
	// user (or a driver before columns were marked) would have.
	run := func(t *testing.T, policy string, handMade bool) *env {
		t.Helper()
		e := newEnv(t, pg, "sink")
		if policy != "" {
			e.drv.cfg.DroppedColumns = policy
		}
		if handMade {
			mustExec(t, e, `CREATE SCHEMA sink; CREATE TABLE sink.t (id integer PRIMARY KEY, a text, b text)`)
		}
		e.mustApply(ins1(10, 1, "a1", "b1"), ins1(10, 2, "a2", "b2"), ins1(10, 3, "a3", "b3"), ins1(10, 5, "a5", "b5"))
		// A column the user adds at the destination: never the source's.
		mustExec(t, e, `ALTER TABLE sink.t ADD COLUMN note text; UPDATE sink.t SET note = 'mine'`)
		// One batch across the drop: the change of row 1 was written
		// before it (lists b), the change of row 2 after it.
		e.mustApply(upd1(20, 1, "a1x", "b1x"), upd2(contracts.OpUpdate, 21, 2, "a2x"))
		// A later batch: only changes written after the drop.
		e.mustApply(upd2(contracts.OpUpdate, 30, 3, "a3x"), upd2(contracts.OpCreate, 30, 4, "a4"))
		return e
	}
	hasB := `SELECT count(*) FROM pg_attribute WHERE attrelid = 'sink.t'::regclass AND attname = 'b' AND NOT attisdropped`

	for _, tt := range []struct {
		name, policy string
		handMade     bool
	}{{"keep by default", "", false}, {"keep, table created by hand", DroppedKeep, true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := run(t, tt.policy, tt.handMade)
			e.expect(`SELECT id, a, b, note FROM sink.t ORDER BY id`,
				"1|a1x|<null>|mine", "2|a2x|<null>|mine", "3|a3x|<null>|mine", "4|a4|<null>|<null>", "5|a5|b5|mine")
			e.expect(`SELECT col_description('sink.t'::regclass, attnum) FROM pg_attribute WHERE attrelid = 'sink.t'::regclass AND attname = 'b'`,
				colmark.Prefix)
			// The source adds b back: rows written from then on carry it.
			e.mustApply(upd1(40, 3, "a3y", "b3y"))
			e.expect(`SELECT id, a, b FROM sink.t WHERE id = 3`, "3|a3y|b3y")
		})
	}
	t.Run("drop", func(t *testing.T) {
		t.Parallel()
		e := run(t, DroppedDrop, false)
		e.expect(hasB, "0")
		e.expect(`SELECT id, a, note FROM sink.t ORDER BY id`,
			"1|a1x|mine", "2|a2x|mine", "3|a3x|mine", "4|a4|<null>", "5|a5|mine")
		// A redelivered change from before the drop adds the column
		// back (empty, version-guarded), and the next change from after
		// the drop drops it again.
		e.mustApply(upd1(20, 1, "a1x", "b1x"))
		e.mustApply(upd2(contracts.OpUpdate, 50, 5, "a5x"))
		e.expect(hasB, "0")
		e.expect(`SELECT id, a, note FROM sink.t WHERE id IN (1, 5) ORDER BY id`, "1|a1x|mine", "5|a5x|mine")
	})
	t.Run("table owned by another role", func(t *testing.T) {
		// The sink's role writes a table it does not own through grants:
		// it cannot comment on its columns, so it marks none, treats none
		// as dropped, and keeps applying.
		t.Parallel()
		e := newEnv(t, pg, "sink")
		role := "writer_" + e.db
		mustExec(t, e, fmt.Sprintf(`CREATE ROLE %[1]s LOGIN; GRANT CREATE ON DATABASE %[2]s TO %[1]s;
			CREATE SCHEMA sink; GRANT USAGE ON SCHEMA sink TO %[1]s;
			CREATE TABLE sink.t (id integer PRIMARY KEY, a text, b text, _rosetta_lsn bigint, _rosetta_seq bigint);
			GRANT SELECT, INSERT, UPDATE, DELETE ON sink.t TO %[1]s`, role, e.db))
		e.drv.cfg.User = role
		e.mustApply(ins1(10, 1, "a1", "b1"), ins1(10, 2, "a2", "b2"))
		e.mustApply(upd2(contracts.OpUpdate, 20, 2, "a2x"))
		e.expect(`SELECT id, a, b FROM sink.t ORDER BY id`, "1|a1|b1", "2|a2x|b2")
		e.expect(`SELECT count(*) FROM pg_description WHERE objoid = 'sink.t'::regclass`, "0")
	})
	t.Run("config", func(t *testing.T) {
		t.Parallel()
		raw, _ := json.Marshal(map[string]any{"host": "h", "database": "d", "user": "u", "dropped_columns": "drop"})
		cfg, err := ParseConfig(raw)
		if err != nil || cfg.DroppedColumns != DroppedDrop {
			t.Fatalf("ParseConfig: %+v, %v", cfg, err)
		}
	})
}

func mustExec(t *testing.T, e *env, sql string) {
	t.Helper()
	if _, err := e.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
