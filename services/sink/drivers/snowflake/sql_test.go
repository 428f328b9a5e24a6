package snowflake

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenShape is a table with a composite key, a name needing quotes and a
// VARIANT column.
func goldenShape() shape {
	return shape{cols: []stageColumn{
		{source: "tenant", name: "TENANT", base: "text", typ: colType{kind: kindText}, key: true},
		{source: "id", name: "ID", base: "bigint", typ: colType{kind: kindNumber, precision: 19}, key: true},
		{source: `Odd "name"`, name: `Odd "name"`, base: "numeric(10,2)", typ: colType{kind: kindNumber, precision: 10, scale: 2}},
		{source: "payload", name: "PAYLOAD", base: "jsonb", typ: colType{kind: kindVariant, variant: "VARIANT"}, toast: true},
	}, keys: []int{0, 1}}
}

// keepShape is goldenShape with PAYLOAD taken from old keys.
func keepShape() shape {
	s := goldenShape()
	s.cols[3].keep = true
	return s
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update after checking):\n%s", path, got)
	}
}

// TestStatementsGolden pins every statement the driver generates for one
// table shape; docs/snowflake.md shows them.
func TestStatementsGolden(t *testing.T) {
	t.Parallel()
	s := goldenShape()
	o := newObjects("ROSETTA", "CDC", "ORDERS", "_ROSETTA_STAGE_0123456789AB")
	var b strings.Builder
	for _, part := range []struct{ name, sql string }{
		{"create table (once per table; DDL, outside the transaction)", createTableSQL(o.target, s.cols, false)},
		{"create table, soft_delete", createTableSQL(o.target, s.cols, true)},
		{"add column (a column the table lacks)", addColumnSQL(o.target, s.cols[3])},
		{"adopt a table without version columns", addBookkeepingColumnSQL(o.target, lsnCol)},
		{"adopt a table without column versions", addBookkeepingColumnSQL(o.target, colvCol)},
		{"read column comments (source marks): binds schema, table", columnCommentsSQL("ROSETTA")},
		{"mark source columns (created, added, or adopted unmarked)", alterColumnsSQL(o.target, []string{markItem(`Odd "name"`, 3), markItem("PAYLOAD", 4)})},
		{"rename a column the source renamed (same attnum)", renameColumnSQL(o.target, "NAME", "FULL_NAME")},
		{"widen columns the source widened", alterColumnsSQL(o.target, []string{widenItem("QTY", colType{kind: kindNumber, precision: 19}),
			widenItem("CODE", colType{kind: kindText})})},
		{"drop a column the source dropped (dropped_columns drop)", dropColumnSQL(o.target, "LEGACY")},
		{"create tombstones (hard delete)", createTombSQL(o.tomb, s.keyCols(), false)},
		{"create registry (once per schema)", createRegistrySQL(o.registry)},
		{"create staging table (once per session and batch shape)", createStageSQL(o.stage, s)},
		{"put (per batch and table, before the transaction)", putSQL(o, "/tmp/rosetta-snowflake-1234.csv.gz", "0a1b2c3d4e5f6071")},
		{"add the collect floor to a registry from before collection", addRegistryColumnSQL(o.registry, collectLSNCol)},
		{"read truncate watermarks and collect floors (in the transaction)", readRegistrySQL(o.registry)},
		{"truncate rows: binds lsn, lsn, seq", truncateRowsSQL(o.target, false)},
		{"truncate rows, soft_delete: binds lsn, seq, lsn, lsn, seq", truncateRowsSQL(o.target, true)},
		{"truncate tombstones: binds lsn, lsn, seq", truncateTombsSQL(o.tomb)},
		{"record truncate: binds table, lsn, seq", markTruncateSQL(o.registry)},
		{"clear staging table", clearStageSQL(o.stage)},
		{"copy into staging table", copySQL(o, s, "0a1b2c3d4e5f6071")},
		{"merge: binds watermark lsn, lsn, seq", mergeSQL(o, s, mergeOptions{})},
		{"merge with a data column the batch does not stage", mergeSQL(o, s, mergeOptions{others: []string{"NOTE"}})},
		{"fill moved rows from the old key (stage)", fillStageSQL(o, keepShape())},
		{"fill a moved row from a second old key: binds old key, key", extraFillSQL(o, s, s.cols[3])},
		{"read column versions at old keys: binds each key", fallbackVersionsSQL(o.target, s, []string{"PAYLOAD"}, 2)},
		{"invalidate columns older than a truncate: binds lsn, seq, lsn, lsn, seq", truncateInvalidateSQL(o.target, []string{"Odd \"name\"", "PAYLOAD"})},
		{"merge, soft_delete", mergeSQL(o, s, mergeOptions{soft: true})},
		{"merge, soft_delete turned off", mergeSQL(o, s, mergeOptions{clearDeleted: true})},
		{"tombstones (hard delete), batch of full upserts", tombSQL(o, s)},
		{"tombstones (hard delete), batch with floors or partial rows: binds watermark twice", tombGuardSQL(o, s, []string{"Odd \"name\"", "PAYLOAD"})},
		{"remove staged files (after a failure)", removeSQL(o, "0a1b2c3d4e5f6071")},
		{"collect: raise the collect floor: binds table, lsn, seq", raiseCollectFloorSQL(o.registry)},
		{"collect: read the collect floor: binds table", readCollectFloorSQL(o.registry)},
		{"collect: version of the chunk-th oldest tombstone below the floor: binds lsn, lsn, seq", collectCutSQL(o.tomb, defaultCollectChunk)},
		{"collect: delete a chunk: binds the cut's lsn, lsn, seq", collectUpToSQL(o.tomb)},
		{"collect: delete the rest below the floor: binds lsn, lsn, seq", truncateTombsSQL(o.tomb)},
	} {
		b.WriteString("-- " + part.name + "\n" + part.sql + ";\n\n")
	}
	checkGolden(t, "statements.golden.sql", []byte(b.String()))
}

// TestStageFileGolden pins the CSV a batch is staged as.
func TestStageFileGolden(t *testing.T) {
	t.Parallel()
	v := func(s string) cdc.Value { return cdc.Value{Text: s} }
	null := cdc.Value{Null: true}
	rows := []cdc.RowChange{
		{Key: []cdc.Value{v("a"), v("1")}, Values: map[string]cdc.Value{"tenant": v("a"), "id": v("1"), `Odd "name"`: v("12.50"),
			"payload": v(`{"q": "say \"hi\"", "nl": "a\nb"}`)}, Version: contracts.Version{LSN: 0x1_0000_0010, Seq: 1}},
		{Key: []cdc.Value{v(""), v("2")}, Values: map[string]cdc.Value{"tenant": v(""), "id": v("2"), `Odd "name"`: null,
			"payload": v("null")}, Version: contracts.Version{LSN: 16, Seq: 2}},
		{Key: []cdc.Value{v("a"), v("3")}, Values: map[string]cdc.Value{"tenant": v("a"), "id": v("3")},
			Unchanged: []string{"payload"}, FallbackKey: []cdc.Value{v("a"), v("1")}, Version: contracts.Version{LSN: 17, Seq: 1}},
		{Key: []cdc.Value{v("b,\"c\""), v("4")}, Delete: true, Version: contracts.Version{LSN: 18, Seq: 1}},
		{Key: []cdc.Value{v("a"), v("5")}, Values: map[string]cdc.Value{"tenant": v("a"), "id": v("5"), "payload": v("{}")},
			ColVersions: map[string]contracts.Version{"payload": {LSN: 0x1_0000_0010, Seq: 3}}, Floor: &contracts.Version{LSN: 19, Seq: 0},
			Version: contracts.Version{LSN: 20, Seq: 2}},
	}
	// Row 3 moved from ("a", "1") and takes its payload from there.
	fills := []map[string][]cdc.Value{2: {"payload": {v("a"), v("1")}}, 4: nil}
	rows = guard.Filled(cdc.TableBatch{Rows: rows}, fills, func(int, string, []cdc.Value) cdc.Value { return null }).Rows
	var buf bytes.Buffer
	if _, err := writeStageCSV(&buf, contracts.Table{Schema: "app", Name: "orders"}, goldenShape(), rows, fills); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "stage.golden.csv", buf.Bytes())
}
