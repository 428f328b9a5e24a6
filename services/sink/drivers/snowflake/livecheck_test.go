package snowflake

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/destcheck"
)

// TestLiveCheck runs the live check against the fake: every capability
// and every mapped type passes, and the check's tables are gone after.
func TestLiveCheck(t *testing.T) {
	t.Parallel()
	srv := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := LiveCheck(ctx, fakeConfig(t, srv, nil), quietLog())
	checkReport(t, rep)
	rd := openReader(t, srv)
	if left := queryRows(t, rd, `SELECT TABLE_NAME FROM ROSETTA.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME LIKE '%ROSETTA_CHECK_%'`); len(left) > 0 {
		t.Errorf("the check left tables behind: %q", left)
	}
}

// checkReport fails t unless rep passed every step, and checks that it
// has one result per mapped type.
func checkReport(t *testing.T, rep destcheck.Report) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.Check] = true
		if !r.OK {
			t.Errorf("%s failed: %s", r.Check, r.Detail)
		}
	}
	for _, c := range liveColumns {
		if !seen["type "+c.base] {
			t.Errorf("no result for type %s", c.base)
		}
	}
	for _, step := range []string{"login", "temporary table", "stage PUT", "stage REMOVE", "warehouse DML", "warehouse query",
		"transient table", "apply", "rows", "drop table"} {
		if !seen[step] {
			t.Errorf("no result for %s", step)
		}
	}
	if !rep.OK {
		var sb strings.Builder
		for _, r := range rep.Results {
			sb.WriteString(r.Check + ": " + r.Detail + "\n")
		}
		t.Logf("report:\n%s", sb.String())
	}
}
