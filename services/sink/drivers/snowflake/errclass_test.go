package snowflake

import (
	"errors"
	"fmt"
	"testing"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
)

// TestErrorRules pins the decision for each Snowflake error number,
// including the ones whose SQLSTATE class says the opposite (22000 for
// infrastructure failures, 22000 for a too-long string).
func TestErrorRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		number    int
		sqlState  string
		permanent bool
		class     string
		lost      bool
	}{
		{91003, "22000", false, "", false}, // failure using stage area
		{90073, "22000", false, "", false}, // resource monitor quota
		{90084, "22000", false, "", false}, // cloud storage
		{630, "57014", false, "", false},   // statement timeout
		{606, "57P03", false, "", false},   // no active warehouse
		{603, "XX000", false, "", false},   // internal error
		{390114, "08001", false, "", true}, // token expired
		{390111, "08003", false, "", true}, // session gone
		{100039, "22003", true, sinkrunner.ClassOutOfRange, false},
		{100046, "22003", true, sinkrunner.ClassOutOfRange, false},
		{100078, "22000", true, sinkrunner.ClassTooLong, false},
		{100069, "22P02", true, sinkrunner.ClassInvalidValue, false},
		{100072, "22000", true, sinkrunner.ClassConstraint, false},
		{100082, "22000", true, sinkrunner.ClassTooLong, false},
		{100090, "42P18", true, sinkrunner.ClassConstraint, false}, // must not be retried forever
		{2003, "42S02", false, "", false},                          // missing object: retried (privileges may come)
		{999999, "22000", false, "", false},                        // unknown number: retried whatever its SQLSTATE
		{999998, "23000", false, "", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.number), func(t *testing.T) {
			err := fmt.Errorf("merge: %w", &sf.SnowflakeError{Number: tt.number, SQLState: tt.sqlState, Message: "x"})
			got := classify(err)
			if sinkrunner.IsPermanent(got) != tt.permanent {
				t.Errorf("%d (%s): permanent = %v, want %v", tt.number, tt.sqlState, sinkrunner.IsPermanent(got), tt.permanent)
			}
			if tt.permanent && sinkrunner.ErrorClass(got) != tt.class {
				t.Errorf("%d: class %s, want %s", tt.number, sinkrunner.ErrorClass(got), tt.class)
			}
			if sessionLost(got) != tt.lost {
				t.Errorf("%d: session lost = %v, want %v", tt.number, sessionLost(got), tt.lost)
			}
		})
	}
}

// TestInfrastructureFaultsRetried injects Snowflake's infrastructure
// failures into a batch: each is a transient error (never dead-lettered,
// although 091003 and 090073 carry SQLSTATE 22000), and the same batch
// applies once the fault is gone.
func TestInfrastructureFaultsRetried(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}
	for _, f := range []struct{ code, stmt string }{
		{fakesnowflake.FaultStageFailure, "COPY INTO"},
		{fakesnowflake.FaultStageFailure, "PUT "},
		{fakesnowflake.FaultResourceMonitor, "MERGE INTO"},
		{fakesnowflake.FaultStatementTimeout, "MERGE INTO"},
		{fakesnowflake.FaultNoWarehouse, "COPY INTO"},
	} {
		t.Run(f.code+" "+f.stmt, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.mustApply(it.Ins(10, 1, "a"))
			batch := []contracts.Change{it.Upd(20, 1, "a2"), it.Ins(21, 2, "b")}
			e.srv.FailNextWith(f.stmt, 1, f.code)
			err := e.apply(batch...)
			var se *sf.SnowflakeError
			if !errors.As(err, &se) || fmt.Sprintf("%06d", se.Number) != f.code || sinkrunner.IsPermanent(err) {
				t.Fatalf("apply with %s on %q = %v; want a transient %s error", f.code, f.stmt, err, f.code)
			}
			e.mustApply(batch...)
			e.expect(items, "1|a2|<null>", "2|b|<null>")
			e.noStagedFiles()
		})
	}
}

// TestReconnectAfterSessionLoss expires the session's token in the middle
// of a batch: the fake then refuses the session for good (390111), so the
// driver must log in again and recreate its staging tables, and the retried
// batch applies.
func TestReconnectAfterSessionLoss(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}
	for _, stmt := range []string{"MERGE INTO", "COPY INTO", "PUT "} {
		t.Run(stmt, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.mustApply(it.Ins(10, 1, "a"))
			batch := []contracts.Change{it.Upd(20, 1, "a2"), it.Ins(21, 2, "b")}
			e.srv.FailNextWith(stmt, 1, fakesnowflake.FaultTokenExpired)
			err := e.apply(batch...)
			if err == nil || sinkrunner.IsPermanent(err) {
				t.Fatalf("apply with an expired token = %v; want a transient error", err)
			}
			e.mustApply(batch...)
			e.expect(items, "1|a2|<null>", "2|b|<null>")
			// Later batches keep working on the new session (its staging
			// tables were created anew, not assumed from the old one).
			e.mustApply(it.Ins(30, 3, "c"))
			e.expect(items, "1|a2|<null>", "2|b|<null>", "3|c|<null>")
		})
	}
}
