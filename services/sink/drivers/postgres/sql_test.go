package postgres

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestStatementsGolden pins the SQL generated for one table shape: a
// composite key, a column needing quotes, and every statement Apply runs.
func TestStatementsGolden(t *testing.T) {
	t.Parallel()
	cols := []stageColumn{
		{Name: "tenant", Type: "text", Key: true},
		{Name: "id", Type: "bigint", Key: true},
		{Name: `Odd "name"`, Type: "numeric(10,2)"},
		{Name: "payload", Type: "jsonb"},
	}
	target := ident("sink", "orders")
	tomb := ident(bookkeepingSchema, tombstoneTableName("sink", "orders"))
	st := buildStatements(target, tomb, "_rosetta_stage_1", cols)
	var b strings.Builder
	for _, part := range []struct{ name, sql string }{
		{"create table", createTableSQL(target, cols)},
		{"create tombstones", createTombstoneSQL(tomb, cols[:2])},
		{"add column", addColumnSQL(target, cols[3])},
		{"create stage", st.createStage},
		{"copy", st.copy},
		{"fill", st.fill},
		{"truncate rows", st.truncateRows},
		{"truncate mark", st.truncateMark},
		{"truncate tombstones", st.truncateTombs},
		{"delete rows", st.deleteRows},
		{"tombstone", st.tombstone},
		{"update", st.update},
		{"insert", st.insert},
		{"untomb", st.untomb},
	} {
		b.WriteString("-- " + part.name + "\n" + part.sql + ";\n\n")
	}
	path := filepath.Join("testdata", "statements.golden.sql")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("generated SQL differs from %s (run go test -update after checking):\n%s", path, b.String())
	}
}

func TestTombstoneTableName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 60)
	names := map[string]bool{}
	for _, st := range [][2]string{{"a", "t"}, {"b", "t"}, {"a", "T"}, {"a", long}, {"a", long + "x"}} {
		n := tombstoneTableName(st[0], st[1])
		if len(n) > 63 {
			t.Errorf("tombstoneTableName(%q, %q) = %q: %d bytes, over 63", st[0], st[1], n, len(n))
		}
		if names[n] {
			t.Errorf("tombstoneTableName(%q, %q) = %q clashes", st[0], st[1], n)
		}
		names[n] = true
	}
}
