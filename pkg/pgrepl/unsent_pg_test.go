package pgrepl

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"

	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestUnsentValuesReplicated decodes a table's changes from a real slot
// before and after each kind of ADD COLUMN, with the real catalog, as
// capture does: PostgreSQL describes the relation again after the ALTER.
func TestUnsentValuesReplicated(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	db := pg.CreateDatabase(t, "unsent")
	conn := pg.Connect(t, db)
	ctx := ctxT(t)
	for i, tt := range []struct {
		name  string
		alter []string // %[1]s is the table
		want  []string
	}{
		{"volatile default", []string{"ALTER TABLE %[1]s ADD COLUMN u uuid DEFAULT gen_random_uuid(); INSERT INTO %[1]s (id, v) VALUES (2, 'b')"}, []string{"u"}},
		{"serial", []string{"ALTER TABLE %[1]s ADD COLUMN s serial"}, []string{"s"}},
		{"identity", []string{"ALTER TABLE %[1]s ADD COLUMN g bigint GENERATED ALWAYS AS IDENTITY"}, []string{"g"}},
		{"constant default keeps one existing value", []string{"ALTER TABLE %[1]s ADD COLUMN c int DEFAULT 7"}, nil},
		{"no default", []string{"ALTER TABLE %[1]s ADD COLUMN n text"}, nil},
		{"constant default, then a rewrite", []string{"ALTER TABLE %[1]s ADD COLUMN r int DEFAULT 7", "VACUUM FULL %[1]s"}, []string{"r"}},
	} {
		table := "unsent_tbl" + string(rune('a'+i))
		pg.Exec(t, db, "CREATE TABLE "+table+" (id int PRIMARY KEY, v text)")
		slot, pub := "unsent_"+testkit.RandomSuffix(), "unsent_"+table
		if err := EnsurePublication(ctx, conn, pub, []natsx.Table{{Schema: "public", Name: table}}); err != nil {
			t.Fatal(err)
		}
		if err := EnsureSlot(ctx, conn, slot); err != nil {
			t.Fatal(err)
		}
		dec := NewDecoder(1, db, NewCatalogResolver(conn))
		pg.Exec(t, db, "INSERT INTO "+table+" VALUES (1, 'a')")
		if n := len(changesOf(t, conn, dec, slot, pub)); n != 1 {
			t.Fatalf("%s: %d changes before the ALTER, want 1", tt.name, n)
		}
		for _, stmt := range tt.alter {
			pg.Exec(t, db, sprintfTable(stmt, table))
		}
		// The relation is described again with the next change.
		pg.Exec(t, db, "UPDATE "+table+" SET v = 'a2' WHERE id = 1")
		changesOf(t, conn, dec, slot, pub)
		var cols []string
		for _, u := range dec.TakeUnsentValues() {
			if u.Schema != "public" || u.Table != table {
				t.Errorf("%s: reported %s.%s, want public.%s", tt.name, u.Schema, u.Table, table)
			}
			cols = append(cols, u.Columns...)
		}
		if !slices.Equal(cols, tt.want) {
			t.Errorf("%s: reported columns %v, want %v", tt.name, cols, tt.want)
		}
		pg.Exec(t, db, "SELECT pg_drop_replication_slot($1)", slot)
	}
}

func sprintfTable(stmt, table string) string { return fmt.Sprintf(stmt, table) }

// changesOf waits until the slot has something to decode (the cluster
// commits asynchronously, and decoding reads only flushed WAL), then
// decodes it.
func changesOf(t *testing.T, conn *pgx.Conn, dec *Decoder, slot, pub string) []contracts.Change {
	t.Helper()
	ctx := ctxT(t)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
			'proto_version', '1', 'publication_names', $2)`, slot, pub).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 || time.Now().After(deadline) {
			break
		}
	}
	return getChanges(t, conn, dec, slot, pub)
}
