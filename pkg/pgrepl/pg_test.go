package pgrepl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestWithPostgres runs the tests that need a real PostgreSQL against one
// cluster; each subtest has its own database, slot and publication.
func TestWithPostgres(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	t.Run("Publication", func(t *testing.T) { t.Parallel(); testPublication(t, pg) })
	t.Run("PublicationCreatedConcurrently", func(t *testing.T) { t.Parallel(); testPublicationConcurrent(t, pg) })
	t.Run("AdoptedPublication", func(t *testing.T) { t.Parallel(); testAdoptedPublication(t, pg) })
	t.Run("Slot", func(t *testing.T) { t.Parallel(); testSlot(t, pg) })
	t.Run("Decode", func(t *testing.T) { t.Parallel(); testDecode(t, pg) })
	t.Run("Stream", func(t *testing.T) { t.Parallel(); testStream(t, pg) })
	t.Run("ExistingValues", func(t *testing.T) { t.Parallel(); testExistingValues(t, pg) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testPublication(t *testing.T, pg *testkit.Postgres) {
	ctx := ctxT(t)
	db := pg.CreateDatabase(t, "pub")
	pg.Exec(t, db, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
		CREATE SCHEMA "Odd schema"; CREATE TABLE "Odd schema"."Odd.Table" (k text PRIMARY KEY);
		CREATE PUBLICATION "pre" FOR TABLE a WITH (publish = 'insert')`)
	conn := pg.Connect(t, db)
	a := natsx.Table{Schema: "public", Name: "a"}
	b := natsx.Table{Schema: "public", Name: "b"}
	odd := natsx.Table{Schema: "Odd schema", Name: "Odd.Table"}

	steps := []struct {
		name   string
		tables []natsx.Table
		want   []natsx.Table
	}{
		{"create", []natsx.Table{b, a, a}, []natsx.Table{a, b}},
		{"unchanged", []natsx.Table{a, b}, []natsx.Table{a, b}},
		{"set with quoted names", []natsx.Table{odd, a}, []natsx.Table{odd, a}},
		{"empty drops all", nil, nil},
		{"add back", []natsx.Table{b}, []natsx.Table{b}},
	}
	for _, s := range steps {
		if err := EnsurePublication(ctx, conn, "My Pub", s.tables); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := PublicationTables(ctx, conn, "My Pub")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, s.want) {
			t.Fatalf("%s: tables = %v, want %v", s.name, got, s.want)
		}
	}
	err := EnsurePublication(ctx, conn, "My Pub", []natsx.Table{{Schema: "public", Name: "missing"}})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing table: err = %v", err)
	}

	// A publication that exists but does not publish every op is fixed.
	if err := EnsurePublication(ctx, conn, "pre", []natsx.Table{a}); err != nil {
		t.Fatal(err)
	}
	var upd, del, trunc, viaRoot bool
	if err := conn.QueryRow(ctx, "SELECT pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication WHERE pubname = 'pre'").
		Scan(&upd, &del, &trunc, &viaRoot); err != nil {
		t.Fatal(err)
	}
	if !upd || !del || !trunc {
		t.Fatalf("publish flags update=%v delete=%v truncate=%v, want all true", upd, del, trunc)
	}
	// Partitions' changes are published under the partitioned table's
	// name (the table a pipeline follows), for new and existing
	// publications alike.
	if !viaRoot {
		t.Fatal("existing publication: publish_via_partition_root is off, want on")
	}
	if err := conn.QueryRow(ctx, `SELECT pubviaroot FROM pg_publication WHERE pubname = 'My Pub'`).Scan(&viaRoot); err != nil || !viaRoot {
		t.Fatalf("new publication: publish_via_partition_root = %v (%v), want on", viaRoot, err)
	}
}

// testPublicationConcurrent makes two EnsurePublication calls both find the
// publication missing and both create it; the loser must re-read the
// publication the winner made, not fail. PostgreSQL reports the lost race
// two ways, and an event trigger that holds CREATE PUBLICATION for a second
// picks which: held before the name check (ddl_command_start), the loser
// mostly finds the winner committed and gets duplicate_object; held after
// the catalog insert (ddl_command_end), the loser inserts the same name
// before the winner commits and gets a unique_violation on the catalog.
func testPublicationConcurrent(t *testing.T, pg *testkit.Postgres) {
	for _, event := range []string{"ddl_command_start", "ddl_command_end"} {
		t.Run(event, func(t *testing.T) {
			ctx := ctxT(t)
			db := pg.CreateDatabase(t, "pubrace_"+strings.TrimPrefix(event, "ddl_command_"))
			pg.Exec(t, db, `CREATE TABLE a (id int PRIMARY KEY);
				CREATE FUNCTION hold_create() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); END $$;
				CREATE EVENT TRIGGER hold_create ON `+event+` WHEN TAG IN ('CREATE PUBLICATION') EXECUTE FUNCTION hold_create()`)
			tables := []natsx.Table{{Schema: "public", Name: "a"}}
			errs := make(chan error, 2)
			for range 2 {
				conn := pg.Connect(t, db)
				go func() { errs <- EnsurePublication(ctx, conn, "raced", tables) }()
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatalf("concurrent EnsurePublication: %v", err)
				}
			}
			got, err := PublicationTables(ctx, pg.Connect(t, db), "raced")
			if err != nil || !slices.Equal(got, tables) {
				t.Fatalf("tables = %v (%v), want %v", got, err, tables)
			}
		})
	}
}

func testSlot(t *testing.T, pg *testkit.Postgres) {
	ctx := ctxT(t)
	db := pg.CreateDatabase(t, "slot")
	conn := pg.Connect(t, db)
	if err := CheckWALLevel(ctx, conn); err != nil {
		t.Fatal(err)
	}
	slot := "rosetta_slot_" + testkit.RandomSuffix()
	for i := 0; i < 2; i++ {
		if err := EnsureSlot(ctx, conn, slot); err != nil {
			t.Fatalf("ensure slot (round %d): %v", i, err)
		}
	}
	s, found, err := ReadSlot(ctx, conn, slot)
	if err != nil || !found {
		t.Fatalf("read slot: %v found=%v", err, found)
	}
	if s.Plugin != "pgoutput" || s.SlotType != "logical" || s.Database != db || s.ConfirmedFlushLSN == 0 || s.WALStatus != "reserved" {
		t.Fatalf("slot = %+v", s)
	}
	if _, found, err := ReadSlot(ctx, conn, "nope"); err != nil || found {
		t.Fatalf("missing slot: found=%v err=%v", found, err)
	}

	td := "td_" + testkit.RandomSuffix()
	pg.Exec(t, db, "SELECT pg_create_logical_replication_slot($1, 'test_decoding')", td)
	if err := EnsureSlot(ctx, conn, td); err == nil || !strings.Contains(err.Error(), "not a pgoutput") {
		t.Fatalf("test_decoding slot: err = %v", err)
	}
	if err := EnsureSlot(ctx, conn, "Bad-Name"); err == nil {
		t.Fatal("bad slot name accepted")
	}
	// A slot of another database cannot be used from this one.
	other := pg.CreateDatabase(t, "slot_other")
	if err := EnsureSlot(ctx, pg.Connect(t, other), slot); err == nil || !strings.Contains(err.Error(), "belongs to database") {
		t.Fatalf("slot of another database: err = %v", err)
	}
}

// TestSlotInvalidated has its own cluster: it shrinks max_slot_wal_keep_size,
// which would invalidate the other tests' slots too.
func TestSlotInvalidated(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	ctx := ctxT(t)
	db := pg.CreateDatabase(t, "lost")
	conn := pg.Connect(t, db)
	pg.Exec(t, db, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
	pg.Exec(t, db, "SELECT pg_reload_conf()")
	pg.Exec(t, db, "CREATE TABLE junk (x int)")
	if err := EnsureSlot(ctx, conn, "doomed"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		pg.Exec(t, db, "INSERT INTO junk SELECT generate_series(1, 1000)")
		pg.Exec(t, db, "SELECT pg_switch_wal()")
	}
	pg.Exec(t, db, "CHECKPOINT")
	s, _, err := ReadSlot(ctx, conn, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	if s.WALStatus != "lost" {
		t.Fatalf("slot wal_status = %q after WAL beyond max_slot_wal_keep_size; the test could not invalidate it", s.WALStatus)
	}
	err = EnsureSlot(ctx, conn, "doomed")
	if !errors.Is(err, ErrSlotInvalidated) {
		t.Fatalf("EnsureSlot on a lost slot: %v, want ErrSlotInvalidated", err)
	}
	// It was not recreated behind our back.
	if s, _, _ := ReadSlot(ctx, conn, "doomed"); s.WALStatus != "lost" {
		t.Fatalf("slot changed to %+v", s)
	}
}

// peekChanges decodes everything the slot has, through the SQL interface of
// logical decoding (same pgoutput messages and LSNs as the stream).
func getChanges(t *testing.T, conn *pgx.Conn, dec *Decoder, slot, pub string) []contracts.Change {
	t.Helper()
	ctx := ctxT(t)
	type rec struct {
		lsn  string
		data []byte
	}
	rows, err := conn.Query(ctx, `SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', $2)`, slot, pub)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
		var x rec
		err := r.Scan(&x.lsn, &x.data)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []contracts.Change
	for _, r := range recs {
		lsn, err := pglogrepl.ParseLSN(r.lsn)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := pglogrepl.Parse(r.data)
		if err != nil {
			t.Fatalf("parse pgoutput message: %v", err)
		}
		cs, err := dec.Decode(ctx, lsn, msg)
		if err != nil {
			t.Fatalf("decode %T: %v", msg, err)
		}
		out = append(out, cs...)
	}
	if dec.InTransaction() {
		t.Fatal("decoder still in a transaction after all messages")
	}
	return out
}

func rowJSON(t *testing.T, r contracts.Row) string {
	t.Helper()
	if r == nil {
		return "null"
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testDecode(t *testing.T, pg *testkit.Postgres) {
	ctx := ctxT(t)
	db := pg.CreateDatabase(t, "decode")
	pg.Exec(t, db, `
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN short AS varchar(20);
CREATE DOMAIN shorter AS short;
CREATE TABLE t (
  id bigint PRIMARY KEY, small smallint, i posint, b boolean, num numeric(10,2), f float8,
  s short, ss shorter, m mood, ms mood[], arr int[], j jsonb, bin bytea, ts timestamptz, big text, n text);
CREATE TABLE full_t (a int, doc text);
ALTER TABLE full_t REPLICA IDENTITY FULL;
CREATE TABLE other (id int PRIMARY KEY);`)
	conn := pg.Connect(t, db)
	// Text output of timestamps depends on the decoding session's settings.
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	slot := "dec_" + testkit.RandomSuffix()
	tables := []natsx.Table{{Schema: "public", Name: "t"}, {Schema: "public", Name: "full_t"}}
	if err := EnsurePublication(ctx, conn, "dec", tables); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSlot(ctx, conn, slot); err != nil {
		t.Fatal(err)
	}
	// A value far beyond the TOAST threshold that compresses poorly.
	const bigSQL = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 2000) g)"
	var big string
	if err := conn.QueryRow(ctx, "SELECT "+bigSQL).Scan(&big); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, db, `
BEGIN;
INSERT INTO t VALUES (1, 3, 7, true, 12.5, 1.5, 'short', 'shorter', 'happy', '{sad,happy}', '{1,2,NULL}',
  '{"a": 1}', '\x00ff', '2024-01-02 03:04:05+00', 'small', NULL);
INSERT INTO other VALUES (1);
INSERT INTO t (id, big) VALUES (2, `+bigSQL+`);
COMMIT;`)
	// One simple-protocol query string is one transaction: one Exec each.
	for _, stmt := range []string{
		"UPDATE t SET n = 'x' WHERE id = 2",
		"UPDATE t SET id = 10 WHERE id = 1",
		"DELETE FROM t WHERE id = 10",
		"INSERT INTO full_t VALUES (1, " + bigSQL + ")",
		"UPDATE full_t SET a = 2",
		"ALTER TABLE t ADD COLUMN extra int DEFAULT 5",
		"INSERT INTO t (id) VALUES (3)",
		"TRUNCATE t, full_t",
	} {
		pg.Exec(t, db, stmt)
	}

	dec := NewDecoder(42, db, NewCatalogResolver(conn))
	got := getChanges(t, conn, dec, slot, "dec")

	type exp struct {
		op               contracts.Op
		table            string
		seq              int64
		key, before, aft string
		unchanged        []string
	}
	bigJSON, _ := json.Marshal(big)
	want := []exp{
		{contracts.OpCreate, "t", 1, `{"id":1}`, `null`,
			`{"arr":"{1,2,NULL}","b":true,"big":"small","bin":"\\x00ff","f":"1.5","i":7,"id":1,"j":"{\"a\": 1}","m":"happy",` +
				`"ms":"{sad,happy}","n":null,"num":"12.50","s":"short","small":3,"ss":"shorter","ts":"2024-01-02 03:04:05+00"}`, nil},
		{contracts.OpCreate, "t", 2, `{"id":2}`, `null`,
			`{"arr":null,"b":null,"big":` + string(bigJSON) + `,"bin":null,"f":null,"i":null,"id":2,"j":null,"m":null,` +
				`"ms":null,"n":null,"num":null,"s":null,"small":null,"ss":null,"ts":null}`, nil},
		{contracts.OpUpdate, "t", 1, `{"id":2}`, `null`,
			`{"arr":null,"b":null,"bin":null,"f":null,"i":null,"id":2,"j":null,"m":null,` +
				`"ms":null,"n":"x","num":null,"s":null,"small":null,"ss":null,"ts":null}`, []string{"big"}},
		{contracts.OpUpdate, "t", 1, `{"id":10}`, `{"id":1}`,
			`{"arr":"{1,2,NULL}","b":true,"big":"small","bin":"\\x00ff","f":"1.5","i":7,"id":10,"j":"{\"a\": 1}","m":"happy",` +
				`"ms":"{sad,happy}","n":null,"num":"12.50","s":"short","small":3,"ss":"shorter","ts":"2024-01-02 03:04:05+00"}`, nil},
		{contracts.OpDelete, "t", 1, `{"id":10}`, `{"id":10}`, `null`, nil},
		{contracts.OpCreate, "full_t", 1, `{"a":1,"doc":` + string(bigJSON) + `}`, `null`, `{"a":1,"doc":` + string(bigJSON) + `}`, nil},
		{contracts.OpUpdate, "full_t", 1, `{"a":2,"doc":` + string(bigJSON) + `}`, `{"a":1,"doc":` + string(bigJSON) + `}`,
			`{"a":2,"doc":` + string(bigJSON) + `}`, nil},
		{contracts.OpCreate, "t", 1, `{"id":3}`, `null`,
			`{"arr":null,"b":null,"big":null,"bin":null,"extra":5,"f":null,"i":null,"id":3,"j":null,"m":null,` +
				`"ms":null,"n":null,"num":null,"s":null,"small":null,"ss":null,"ts":null}`, nil},
		{contracts.OpTruncate, "t", 1, `null`, `null`, `null`, nil},
		{contracts.OpTruncate, "full_t", 2, `null`, `null`, `null`, nil},
	}
	if len(got) != len(want) {
		for _, c := range got {
			t.Logf("got %s %s seq %d key %s", c.Op, c.Source.Table, c.Source.Seq, rowJSON(t, c.Key))
		}
		t.Fatalf("got %d changes, want %d", len(got), len(want))
	}
	var prevCommit uint64
	for i, w := range want {
		c := got[i]
		where := fmt.Sprintf("change %d (%s %s)", i, w.op, w.table)
		if c.Op != w.op || c.Source.Table != w.table || c.Source.Schema != "public" || c.Source.Seq != w.seq {
			t.Errorf("%s: got %s %s.%s seq %d", where, c.Op, c.Source.Schema, c.Source.Table, c.Source.Seq)
			continue
		}
		if g := rowJSON(t, c.Key); g != w.key {
			t.Errorf("%s: key\n got %s\nwant %s", where, g, w.key)
		}
		if g := rowJSON(t, c.Before); g != w.before {
			t.Errorf("%s: before\n got %s\nwant %s", where, g, w.before)
		}
		if g := rowJSON(t, c.After); g != w.aft {
			t.Errorf("%s: after\n got %.300s\nwant %.300s", where, g, w.aft)
		}
		if !slices.Equal(c.Unchanged, w.unchanged) {
			t.Errorf("%s: unchanged %v, want %v", where, c.Unchanged, w.unchanged)
		}
		commit, err := contracts.ParseLSN(c.Source.CommitLSN)
		if err != nil {
			t.Fatal(err)
		}
		lsn, err := contracts.ParseLSN(c.Source.LSN)
		if err != nil {
			t.Fatal(err)
		}
		if commit < prevCommit || lsn > commit || lsn == 0 || c.Source.TxID == 0 || c.Source.CommitTime.IsZero() ||
			c.Source.Database != db || c.Source.SourceID != 42 {
			t.Errorf("%s: source %+v (previous commit %s)", where, c.Source, contracts.FormatLSN(prevCommit))
		}
		prevCommit = commit
	}
	// The first transaction's two changes share commit LSN and xid.
	if got[0].Source.CommitLSN != got[1].Source.CommitLSN || got[0].Source.TxID != got[1].Source.TxID {
		t.Errorf("one transaction, two commit positions: %+v / %+v", got[0].Source, got[1].Source)
	}

	wantCols := []contracts.Column{
		{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
		{Name: "small", Type: "smallint", BaseType: "smallint"},
		{Name: "i", Type: "public.posint", BaseType: "integer"},
		{Name: "b", Type: "boolean", BaseType: "boolean"},
		{Name: "num", Type: "numeric(10,2)", BaseType: "numeric(10,2)"},
		{Name: "f", Type: "double precision", BaseType: "double precision"},
		{Name: "s", Type: "public.short", BaseType: "character varying(20)"},
		{Name: "ss", Type: "public.shorter", BaseType: "character varying(20)"},
		{Name: "m", Type: "public.mood", BaseType: "text"},
		{Name: "ms", Type: "public.mood[]", BaseType: "text"},
		{Name: "arr", Type: "integer[]", BaseType: "integer[]"},
		{Name: "j", Type: "jsonb", BaseType: "jsonb"},
		{Name: "bin", Type: "bytea", BaseType: "bytea"},
		{Name: "ts", Type: "timestamp with time zone", BaseType: "timestamp with time zone"},
		{Name: "big", Type: "text", BaseType: "text"},
		{Name: "n", Type: "text", BaseType: "text"},
	}
	for i := range wantCols {
		wantCols[i].Attnum = i + 1 // t drops no column: attnums follow the declared order
	}
	if !slices.Equal(got[0].Columns, wantCols) {
		t.Errorf("columns\n got %+v\nwant %+v", got[0].Columns, wantCols)
	}
	// After ADD COLUMN the relation was described again.
	if cols := got[7].Columns; len(cols) != len(wantCols)+1 || cols[len(cols)-1] != (contracts.Column{Name: "extra", Type: "integer", BaseType: "integer", Attnum: len(wantCols) + 1, ExistingValue: "5"}) {
		t.Errorf("columns after ADD COLUMN: %+v", cols)
	}
	// No primary key under REPLICA IDENTITY FULL: every column is key.
	if cols := got[5].Columns; len(cols) != 2 || !cols[0].Key || !cols[1].Key {
		t.Errorf("full_t columns: %+v", cols)
	}
}

func testStream(t *testing.T, pg *testkit.Postgres) {
	ctx := ctxT(t)
	db := pg.CreateDatabase(t, "stream")
	pg.Exec(t, db, "CREATE TABLE s (id int PRIMARY KEY, v text)")
	conn := pg.Connect(t, db)
	slot := "stream_" + testkit.RandomSuffix()
	if err := EnsurePublication(ctx, conn, "stream pub", []natsx.Table{{Schema: "public", Name: "s"}}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSlot(ctx, conn, slot); err != nil {
		t.Fatal(err)
	}
	rconn, err := pgconn.Connect(ctx, pg.DSN(db)+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close(context.Background())
	if err := StartReplication(ctx, rconn, slot, "stream pub", 0); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, db, "INSERT INTO s VALUES (1, 'a'), (2, 'b')")

	dec := NewDecoder(1, db, NewCatalogResolver(conn))
	var changes []contracts.Change
	var end pglogrepl.LSN
	for end == 0 {
		m, ok, err := ReceiveMessage(ctx, rconn, time.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !ok || m.XLogData == nil {
			continue
		}
		msg, err := pglogrepl.Parse(m.XLogData.WALData)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := dec.Decode(ctx, m.XLogData.WALStart, msg)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, cs...)
		if c, ok := msg.(*pglogrepl.CommitMessage); ok {
			end = c.TransactionEndLSN
		}
	}
	if len(changes) != 2 || rowJSON(t, changes[1].After) != `{"id":2,"v":"b"}` || changes[1].Source.Seq != 2 {
		t.Fatalf("changes = %+v", changes)
	}
	if err := SendStatus(ctx, rconn, end, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _, err := ReadSlot(ctx, conn, slot)
		if err != nil {
			t.Fatal(err)
		}
		if s.ConfirmedFlushLSN == end {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirmed_flush_lsn = %s, want %s", s.ConfirmedFlushLSN, end)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A receive that times out leaves the connection usable.
	if _, ok, err := ReceiveMessage(ctx, rconn, time.Now().Add(100*time.Millisecond)); err != nil {
		t.Fatalf("idle receive: %v", err)
	} else if ok {
		t.Log("idle receive got a keepalive")
	}
	if err := SendStatus(ctx, rconn, end, true); err != nil {
		t.Fatalf("status after idle receive: %v", err)
	}
}
