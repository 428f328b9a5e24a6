package postgres

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
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
	st := buildStatements(target, tomb, "_rosetta_stage_1", cols, colvSQL{has: true})
	var b strings.Builder
	for _, part := range []struct{ name, sql string }{
		{"create table", createTableSQL(target, cols)},
		{"create tombstones", createTombstoneSQL(tomb, cols[:2])},
		{"add column", addColumnSQL(target, cols[3])},
		{"create stage", st.createStage},
		{"copy", st.copy},
		{"invalidate rows", st.InvalidateRows},
		{"truncate rows", st.TruncateRows},
		{"truncate mark", st.TruncateMark},
		{"truncate tombstones", st.TruncateTombs},
		{"delete rows", st.DeleteRows},
		{"tombstone", st.Tombstone},
		{"update", st.Update},
		{"insert", st.Insert},
		{"untomb", st.Untomb},
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

func TestNeedsCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dest, sent string
		want       bool
	}{
		{"numeric(10,2)", "numeric(10,2)", false},
		{"text", "integer", false},            // text keeps the text as sent
		{"character varying", "jsonb", false}, // so does unbounded varchar
		{"numeric(10,1)", "numeric(10,3)", true},
		{"timestamp(3) without time zone", "timestamp without time zone", true},
		{"character varying(5)", "character varying(10)", true},
		{"real", "double precision", true},
		{"bigint", "integer", true}, // holds every integer, but checking costs one query only for such columns
	} {
		if got := needsCheck(tc.dest, tc.sent); got != tc.want {
			t.Errorf("needsCheck(%q, %q) = %v, want %v", tc.dest, tc.sent, got, tc.want)
		}
	}
}

func TestCheckStatement(t *testing.T) {
	t.Parallel()
	cols := []stageColumn{
		{Name: "id", Type: "integer", Key: true},
		{Name: "price", Type: "numeric(10,1)", Check: "numeric(10,3)"},
		{Name: "note", Type: "text"},
	}
	st := buildStatements(ident("public", "t"), ident("_rosetta", "tomb_t"), "_rosetta_stage_1", cols, colvSQL{has: true})
	if !strings.HasSuffix(st.copy, `"_rosetta_fseq", "_rosetta_in_2") FROM STDIN`) {
		t.Errorf("copy does not end with the checked column's sent text: %s", st.copy)
	}
	if len(st.checks) != 1 {
		t.Fatalf("got %d checks, want 1", len(st.checks))
	}
	want := `SELECT s."_rosetta_in_2", s."price"::text, ARRAY[s."id"::text] FROM "_rosetta_stage_1" AS s WHERE NOT s."_rosetta_del" AND s."_rosetta_in_2" IS NOT NULL AND (s."price"::text::numeric(10,3))::text IS DISTINCT FROM (s."_rosetta_in_2"::numeric(10,3))::text LIMIT 1`
	if st.checks[0].sql != want {
		t.Errorf("check:\n got %s\nwant %s", st.checks[0].sql, want)
	}
	var buf bytes.Buffer
	encodeRows(&buf, cols, []cdc.RowChange{
		{Key: []cdc.Value{{Text: "1"}}, Values: map[string]cdc.Value{"price": {Text: "1.005"}, "note": {Text: "x"}}},
		{Key: []cdc.Value{{Text: "2"}}, Delete: true},
	})
	for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if got, want := f[len(f)-1], []string{"1.005", `\N`}[i]; got != want {
			t.Errorf("row %d: sent text %q, want %q (%q)", i, got, want, line)
		}
	}
}

// createTableSQL and createTombstoneSQL are the DDL the golden file pins,
// as the shared statements write it in PostgreSQL's syntax.
func createTableSQL(target string, cols []stageColumn) string {
	return colvSQL{}.syntax().CreateTable(target, relational.Columns(cols, stageColumn.column))
}

func createTombstoneSQL(tomb string, keys []stageColumn) string {
	return colvSQL{}.syntax().CreateTombstone(tomb, relational.Columns(keys, stageColumn.column))
}
