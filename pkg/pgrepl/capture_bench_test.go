package pgrepl

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rosettacdc/rosetta/pkg/benchcpu"
)

// benchRel is the bench's table (bench/cmd/rosetta-bench): id bigint
// primary key, ver and qty integer, amount bigint, price double precision,
// note text, ts timestamptz, attrs jsonb.
var (
	benchRel = &pglogrepl.RelationMessage{
		RelationID: 300, Namespace: "public", RelationName: "bench_ins_100", ReplicaIdentity: 'd', ColumnNum: 8,
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "id", DataType: pgtype.Int8OID, TypeModifier: -1},
			{Name: "ver", DataType: pgtype.Int4OID, TypeModifier: -1},
			{Name: "qty", DataType: pgtype.Int4OID, TypeModifier: -1},
			{Name: "amount", DataType: pgtype.Int8OID, TypeModifier: -1},
			{Name: "price", DataType: pgtype.Float8OID, TypeModifier: -1},
			{Name: "note", DataType: pgtype.TextOID, TypeModifier: -1},
			{Name: "ts", DataType: pgtype.TimestamptzOID, TypeModifier: -1},
			{Name: "attrs", DataType: pgtype.JSONBOID, TypeModifier: -1},
		},
	}
	benchResolver = staticResolver{300: {
		colAt("bigint", pgtype.Int8OID, true, 1),
		colAt("integer", pgtype.Int4OID, false, 2),
		colAt("integer", pgtype.Int4OID, false, 3),
		colAt("bigint", pgtype.Int8OID, false, 4),
		colAt("double precision", pgtype.Float8OID, false, 5),
		colAt("text", pgtype.TextOID, false, 6),
		colAt("timestamp with time zone", pgtype.TimestamptzOID, false, 7),
		colAt("jsonb", pgtype.JSONBOID, false, 8),
	}}
	// benchInsert is row 123456 at version 1 as pgoutput sends it (text
	// mode; jsonb as PostgreSQL prints it).
	benchInsert = &pglogrepl.InsertMessage{RelationID: 300, Tuple: tuple(
		txt("123456"), txt("1"), txt("43"), txt("123456001"), txt("34.702857142857141"),
		txt("order 123456 v1 shipped to warehouse north-east"), txt("2026-01-01 00:02:04.456+00"),
		txt(`{"qty": 1, "sku": "SKU-456", "gift": false, "tags": ["a", "b"]}`))}
)

func colAt(typ string, oid uint32, key bool, attnum int) Column {
	c := col(typ, typ, oid, key)
	c.Attnum = attnum
	return c
}

func benchDecoder(b *testing.B) *Decoder {
	ctx := context.Background()
	d := NewDecoder(1, "src", benchResolver)
	if _, err := d.Decode(ctx, 1, benchRel); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Decode(ctx, 1, begin(0x1D79000, 750)); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkDecodeBenchRow is the decoding of one insert of the bench's row
// shape, what capture pays per change of the bench between
// pglogrepl.Parse and encoding.
func BenchmarkDecodeBenchRow(b *testing.B) {
	ctx := context.Background()
	d := benchDecoder(b)
	b.ReportAllocs()
	defer benchcpu.PerOp(b)()
	for b.Loop() {
		if _, err := d.Decode(ctx, 0x1D78E70, benchInsert); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCaptureChange is capture's CPU per change of the bench between
// the replication connection and the publish: pglogrepl.Parse of the
// pgoutput bytes, Decode, and the JSON envelope into a fresh body (capture
// gives every message its own body, JetStream may resend it).
func BenchmarkCaptureChange(b *testing.B) {
	ctx := context.Background()
	d := benchDecoder(b)
	wal := encodeInsert(benchInsert)
	hint := 0
	b.ReportAllocs()
	defer benchcpu.PerOp(b)()
	for b.Loop() {
		msg, err := pglogrepl.Parse(wal)
		if err != nil {
			b.Fatal(err)
		}
		changes, err := d.Decode(ctx, 0x1D78E70, msg)
		if err != nil {
			b.Fatal(err)
		}
		body, err := changes[0].AppendJSON(make([]byte, 0, hint))
		if err != nil {
			b.Fatal(err)
		}
		hint = max(hint, len(body)+len(body)/8)
	}
}

// BenchmarkCaptureChangeInPlace is BenchmarkCaptureChange with the insert
// decoded by DecodeRowMessage straight from its bytes instead of
// pglogrepl.Parse and Decode.
func BenchmarkCaptureChangeInPlace(b *testing.B) {
	d := benchDecoder(b)
	wal := encodeInsert(benchInsert)
	hint := 0
	b.ReportAllocs()
	defer benchcpu.PerOp(b)()
	for b.Loop() {
		changes, ok, err := d.DecodeRowMessage(0x1D78E70, wal)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		body, err := changes[0].AppendJSON(make([]byte, 0, hint))
		if err != nil {
			b.Fatal(err)
		}
		hint = max(hint, len(body)+len(body)/8)
	}
}

// encodeInsert writes m in pgoutput's wire form (protocol 1, text values),
// the bytes pglogrepl.Parse reads.
func encodeInsert(m *pglogrepl.InsertMessage) []byte {
	out := binary.BigEndian.AppendUint32([]byte{'I'}, m.RelationID)
	return appendTuple(append(out, 'N'), m.Tuple)
}

func encodeUpdate(m *pglogrepl.UpdateMessage) []byte {
	out := binary.BigEndian.AppendUint32([]byte{'U'}, m.RelationID)
	if m.OldTuple != nil {
		out = appendTuple(append(out, m.OldTupleType), m.OldTuple)
	}
	return appendTuple(append(out, 'N'), m.NewTuple)
}

func encodeDelete(m *pglogrepl.DeleteMessage) []byte {
	out := binary.BigEndian.AppendUint32([]byte{'D'}, m.RelationID)
	return appendTuple(append(out, m.OldTupleType), m.OldTuple)
}

func appendTuple(out []byte, t *pglogrepl.TupleData) []byte {
	out = binary.BigEndian.AppendUint16(out, uint16(len(t.Columns)))
	for _, c := range t.Columns {
		out = append(out, c.DataType)
		if c.DataType == pglogrepl.TupleDataTypeText || c.DataType == pglogrepl.TupleDataTypeBinary {
			out = binary.BigEndian.AppendUint32(out, uint32(len(c.Data)))
			out = append(out, c.Data...)
		}
	}
	return out
}
