package pgrepl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rosettacdc/rosetta/contracts"
)

// staticResolver resolves relations from a fixed table, standing in for the
// catalog in tests of the pure decoding.
type staticResolver map[uint32][]Column

func (s staticResolver) ResolveRelation(_ context.Context, rel *pglogrepl.RelationMessage) ([]Column, error) {
	return s[rel.RelationID], nil
}

func col(typ, base string, oid uint32, key bool) Column {
	return Column{Column: contracts.Column{Type: typ, BaseType: base, Key: key}, ValueOID: oid}
}

func txt(s string) *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(s)), Data: []byte(s)}
}

var (
	null  = &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeNull}
	toast = &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeToast}
)

func tuple(cols ...*pglogrepl.TupleDataColumn) *pglogrepl.TupleData {
	return &pglogrepl.TupleData{ColumnNum: uint16(len(cols)), Columns: cols}
}

// relItems is public.items(id int4 PK, name text, big text, ok bool, n int8)
// under REPLICA IDENTITY DEFAULT (id flagged as identity); relFull is
// public.full_t(id int8, doc text) with no primary key under FULL.
var (
	relItems = &pglogrepl.RelationMessage{
		RelationID: 100, Namespace: "public", RelationName: "items", ReplicaIdentity: 'd', ColumnNum: 5,
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "id", DataType: pgtype.Int4OID, TypeModifier: -1},
			{Name: "name", DataType: pgtype.TextOID, TypeModifier: -1},
			{Name: "big", DataType: pgtype.TextOID, TypeModifier: -1},
			{Name: "ok", DataType: pgtype.BoolOID, TypeModifier: -1},
			{Name: "n", DataType: pgtype.Int8OID, TypeModifier: -1},
		},
	}
	relFull = &pglogrepl.RelationMessage{
		RelationID: 200, Namespace: "s p", RelationName: "full_t", ReplicaIdentity: 'f', ColumnNum: 2,
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "id", DataType: pgtype.Int8OID, TypeModifier: -1},
			{Flags: 1, Name: "doc", DataType: pgtype.TextOID, TypeModifier: -1},
		},
	}
	testResolver = staticResolver{
		100: {
			col("integer", "integer", pgtype.Int4OID, true),
			col("text", "text", pgtype.TextOID, false),
			col("text", "text", pgtype.TextOID, false),
			col("boolean", "boolean", pgtype.BoolOID, false),
			col("bigint", "bigint", pgtype.Int8OID, false),
		},
		200: {
			col("bigint", "bigint", pgtype.Int8OID, true),
			col("text", "text", pgtype.TextOID, true),
		},
	}
	commitTime = time.Date(2025, 3, 4, 5, 6, 7, 890000000, time.UTC)
)

func begin(final pglogrepl.LSN, xid uint32) *pglogrepl.BeginMessage {
	return &pglogrepl.BeginMessage{FinalLSN: final, CommitTime: commitTime.Local(), Xid: xid}
}

// body is a change without the parts every case shares, for comparison.
type body struct {
	Op        contracts.Op `json:"op"`
	Table     string       `json:"table"`
	LSN       string       `json:"lsn"`
	Seq       int64        `json:"seq"`
	Key       contracts.Row
	Before    contracts.Row
	After     contracts.Row
	Unchanged []string
}

func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestDecoderChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msgs []pglogrepl.Message // between Begin and Commit
		want string              // JSON of []body
	}{
		{
			name: "insert with null, bool, bigint and escaped text",
			msgs: []pglogrepl.Message{&pglogrepl.InsertMessage{RelationID: 100,
				Tuple: tuple(txt("1"), txt("a \"q\" <b>\n\x01é"), null, txt("t"), txt("-9223372036854775808"))}},
			want: `[{"op":"c","table":"items","lsn":"0/1000","seq":1,"Key":{"id":1},"Before":null,
				"After":{"big":null,"id":1,"n":-9223372036854775808,"name":"a \"q\" <b>\n\u0001é","ok":true},"Unchanged":null}]`,
		},
		{
			name: "update with unchanged toast and no old tuple",
			msgs: []pglogrepl.Message{&pglogrepl.UpdateMessage{RelationID: 100,
				NewTuple: tuple(txt("1"), txt("b"), toast, txt("f"), null)}},
			want: `[{"op":"u","table":"items","lsn":"0/1000","seq":1,"Key":{"id":1},"Before":null,
				"After":{"id":1,"n":null,"name":"b","ok":false},"Unchanged":["big"]}]`,
		},
		{
			name: "update changing the key: old key tuple holds identity columns only",
			msgs: []pglogrepl.Message{&pglogrepl.UpdateMessage{RelationID: 100,
				OldTupleType: pglogrepl.UpdateMessageTupleTypeKey, OldTuple: tuple(txt("1"), null, null, null, null),
				NewTuple: tuple(txt("2"), txt("b"), toast, txt("t"), txt("5"))}},
			want: `[{"op":"u","table":"items","lsn":"0/1000","seq":1,"Key":{"id":2},"Before":{"id":1},
				"After":{"id":2,"n":5,"name":"b","ok":true},"Unchanged":["big"]}]`,
		},
		{
			name: "delete under default identity",
			msgs: []pglogrepl.Message{&pglogrepl.DeleteMessage{RelationID: 100,
				OldTupleType: pglogrepl.DeleteMessageTupleTypeKey, OldTuple: tuple(txt("7"), null, null, null, null)}},
			want: `[{"op":"d","table":"items","lsn":"0/1000","seq":1,"Key":{"id":7},"Before":{"id":7},"After":null,"Unchanged":null}]`,
		},
		{
			name: "update under FULL fills unchanged toast from the old tuple",
			msgs: []pglogrepl.Message{&pglogrepl.UpdateMessage{RelationID: 200,
				OldTupleType: pglogrepl.UpdateMessageTupleTypeOld, OldTuple: tuple(txt("3"), txt("long doc")),
				NewTuple: tuple(txt("4"), toast)}},
			want: `[{"op":"u","table":"full_t","lsn":"0/1000","seq":1,"Key":{"doc":"long doc","id":4},
				"Before":{"doc":"long doc","id":3},"After":{"doc":"long doc","id":4},"Unchanged":null}]`,
		},
		{
			name: "update under FULL with toast also unchanged in the old tuple",
			msgs: []pglogrepl.Message{&pglogrepl.UpdateMessage{RelationID: 200,
				OldTupleType: pglogrepl.UpdateMessageTupleTypeOld, OldTuple: tuple(txt("3"), toast),
				NewTuple: tuple(txt("4"), toast)}},
			want: `[{"op":"u","table":"full_t","lsn":"0/1000","seq":1,"Key":{"id":4},
				"Before":{"id":3},"After":{"id":4},"Unchanged":["doc"]}]`,
		},
		{
			name: "delete under FULL",
			msgs: []pglogrepl.Message{&pglogrepl.DeleteMessage{RelationID: 200,
				OldTupleType: pglogrepl.DeleteMessageTupleTypeOld, OldTuple: tuple(txt("3"), null)}},
			want: `[{"op":"d","table":"full_t","lsn":"0/1000","seq":1,"Key":{"doc":null,"id":3},
				"Before":{"doc":null,"id":3},"After":null,"Unchanged":null}]`,
		},
		{
			name: "truncate of two relations and sequence numbers",
			msgs: []pglogrepl.Message{
				&pglogrepl.InsertMessage{RelationID: 200, Tuple: tuple(txt("1"), txt("x"))},
				&pglogrepl.TruncateMessage{RelationNum: 2, RelationIDs: []uint32{100, 200}},
			},
			want: `[{"op":"c","table":"full_t","lsn":"0/1000","seq":1,"Key":{"doc":"x","id":1},"Before":null,"After":{"doc":"x","id":1},"Unchanged":null},
				{"op":"t","table":"items","lsn":"0/1000","seq":2,"Key":null,"Before":null,"After":null,"Unchanged":null},
				{"op":"t","table":"full_t","lsn":"0/1000","seq":3,"Key":null,"Before":null,"After":null,"Unchanged":null}]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			d := NewDecoder(9, "shop", testResolver)
			for _, m := range []pglogrepl.Message{relItems, relFull, begin(0x2000, 77)} {
				if out, err := d.Decode(ctx, 0x0F00, m); err != nil || len(out) != 0 {
					t.Fatalf("decode %T: %v %v", m, out, err)
				}
			}
			if !d.InTransaction() {
				t.Fatal("not in transaction after begin")
			}
			var got []body
			for _, m := range tc.msgs {
				out, err := d.Decode(ctx, 0x1000, m)
				if err != nil {
					t.Fatalf("decode %T: %v", m, err)
				}
				for _, c := range out {
					if c.V != contracts.EnvelopeVersion || c.Source.SourceID != 9 || c.Source.Database != "shop" ||
						c.Source.CommitLSN != "0/2000" || c.Source.TxID != 77 || !c.Source.CommitTime.Equal(commitTime) ||
						c.Source.CommitTime.Location() != time.UTC {
						t.Errorf("source = %+v", c.Source)
					}
					rel := relItems
					if c.Source.Table == "full_t" {
						rel = relFull
					}
					if c.Source.Schema != rel.Namespace || len(c.Columns) != len(rel.Columns) || c.Columns[0].Name != "id" {
						t.Errorf("schema %q columns %+v", c.Source.Schema, c.Columns)
					}
					got = append(got, body{Op: c.Op, Table: c.Source.Table, LSN: c.Source.LSN, Seq: c.Source.Seq,
						Key: c.Key, Before: c.Before, After: c.After, Unchanged: c.Unchanged})
				}
			}
			var want []body
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			if g, w := canon(t, got), canon(t, want); g != w {
				t.Errorf("changes\n got %s\nwant %s", g, w)
			}
			if out, err := d.Decode(ctx, 0x2000, &pglogrepl.CommitMessage{CommitLSN: 0x2000, TransactionEndLSN: 0x2030}); err != nil || len(out) != 0 {
				t.Fatalf("commit: %v %v", out, err)
			}
			if d.InTransaction() {
				t.Fatal("in transaction after commit")
			}
		})
	}
}

func TestDecoderErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		msgs []pglogrepl.Message
		want string
	}{
		{"change outside a transaction",
			[]pglogrepl.Message{relItems, &pglogrepl.InsertMessage{RelationID: 100, Tuple: tuple(txt("1"), null, null, null, null)}},
			"outside a transaction"},
		{"unknown relation",
			[]pglogrepl.Message{begin(1, 1), &pglogrepl.InsertMessage{RelationID: 5, Tuple: tuple(txt("1"))}},
			"relation 5 was not described"},
		{"tuple shorter than relation",
			[]pglogrepl.Message{relItems, begin(1, 1), &pglogrepl.InsertMessage{RelationID: 100, Tuple: tuple(txt("1"))}},
			"tuple has 1 columns"},
		{"bad integer text",
			[]pglogrepl.Message{relItems, begin(1, 1), &pglogrepl.InsertMessage{RelationID: 100, Tuple: tuple(txt("x"), null, null, null, null)}},
			"column id (integer)"},
		{"binary tuple data",
			[]pglogrepl.Message{relItems, begin(1, 1), &pglogrepl.InsertMessage{RelationID: 100,
				Tuple: tuple(&pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeBinary}, null, null, null, null)}},
			"text mode"},
		{"commit without begin", []pglogrepl.Message{&pglogrepl.CommitMessage{}}, "no transaction began"},
		{"resolver column count mismatch",
			[]pglogrepl.Message{&pglogrepl.RelationMessage{RelationID: 100, Columns: relFull.Columns}}, "resolver returned 5 columns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := NewDecoder(1, "db", testResolver)
			var err error
			for _, m := range tc.msgs {
				if _, err = d.Decode(ctx, 1, m); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTextValue(t *testing.T) {
	t.Parallel()
	m := pgtype.NewMap()
	tests := []struct {
		oid  uint32
		in   string
		want string
	}{
		{pgtype.Int2OID, "-32768", `-32768`},
		{pgtype.Int4OID, "2147483647", `2147483647`},
		{pgtype.Int8OID, "9223372036854775807", `9223372036854775807`},
		{pgtype.BoolOID, "f", `false`},
		{pgtype.NumericOID, "12345678901234567890.000000001", `"12345678901234567890.000000001"`},
		{pgtype.Float8OID, "NaN", `"NaN"`},
		{pgtype.ByteaOID, `\x00ff`, `"\\x00ff"`},
		{pgtype.JSONBOID, `{"a": [1, "<&>"]}`, `"{\"a\": [1, \"<&>\"]}"`},
		{pgtype.TextOID, "tab\there\r\u2028", "\"tab\\there\\r\\u2028\""},
		{pgtype.TextOID, "bad \xff utf8", `"bad \ufffd utf8"`},
	}
	for _, tc := range tests {
		got, err := textValue(m, tc.oid, []byte(tc.in))
		if err != nil {
			t.Errorf("textValue(%d, %q): %v", tc.oid, tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("textValue(%d, %q) = %s, want %s", tc.oid, tc.in, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("textValue(%d, %q) = %s is not valid JSON", tc.oid, tc.in, got)
		}
		if tc.oid == pgtype.TextOID && !strings.Contains(tc.in, "\xff") {
			var s string
			if err := json.Unmarshal(got, &s); err != nil || s != tc.in {
				t.Errorf("round trip of %q gave %q (%v)", tc.in, s, err)
			}
		}
	}
}

func TestCheckSlot(t *testing.T) {
	t.Parallel()
	ok := Slot{Name: "s", Plugin: "pgoutput", SlotType: "logical", Database: "db", WALStatus: "reserved"}
	if err := checkSlot(ok, "db"); err != nil {
		t.Fatalf("good slot: %v", err)
	}
	lost := ok
	lost.WALStatus = "lost"
	if err := checkSlot(lost, "db"); err == nil || !strings.Contains(err.Error(), "backfill") {
		t.Fatalf("lost slot error = %v", err)
	} else if !errors.Is(err, ErrSlotInvalidated) {
		t.Fatalf("lost slot error does not wrap ErrSlotInvalidated: %v", err)
	}
	other := ok
	other.Database = "x"
	if err := checkSlot(other, "db"); err == nil {
		t.Fatal("slot of another database accepted")
	}
	td := ok
	td.Plugin = "test_decoding"
	if err := checkSlot(td, "db"); err == nil {
		t.Fatal("test_decoding slot accepted")
	}
}
