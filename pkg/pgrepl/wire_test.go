package pgrepl

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/rosettacdc/rosetta/contracts"
)

// decodeBoth decodes data with DecodeRowMessage on in and with
// pglogrepl.Parse + Decode on ref, and returns both results as envelope
// JSON (or the error).
func decodeBoth(t *testing.T, in, ref *Decoder, data []byte) (got, want string) {
	t.Helper()
	show := func(cs []contracts.Change, err error) string {
		if err != nil {
			return "error: " + err.Error()
		}
		var out []byte
		for i := range cs {
			b, err := cs[i].AppendJSON(nil)
			if err != nil {
				return "encode error: " + err.Error()
			}
			out = append(append(out, b...), '\n')
		}
		return string(out)
	}
	cs, ok, err := in.DecodeRowMessage(0x1000, data)
	if !ok {
		t.Fatalf("DecodeRowMessage(%q) did not take a row message", data)
	}
	got = show(cs, err)
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		t.Fatalf("pglogrepl.Parse(%q): %v", data, err)
	}
	want = show(ref.Decode(context.Background(), 0x1000, msg))
	return got, want
}

func decoders(t *testing.T) (in, ref *Decoder) {
	in, ref = NewDecoder(1, "db", testResolver), NewDecoder(1, "db", testResolver)
	for _, d := range []*Decoder{in, ref} {
		for _, m := range []pglogrepl.Message{relItems, relFull, begin(0x2000, 9)} {
			if _, err := d.Decode(context.Background(), 1, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	return in, ref
}

// TestDecodeRowMessageEqualsParse: inserts, updates (no old tuple, key,
// full old row) and deletes of both test relations, fixed and random
// (text, nulls, unchanged TOAST, values pgx refuses), decode in place to
// what pglogrepl.Parse + Decode give, error for error.
func TestDecodeRowMessageEqualsParse(t *testing.T) {
	t.Parallel()
	in, ref := decoders(t)
	msgs := [][]byte{
		encodeInsert(&pglogrepl.InsertMessage{RelationID: 100,
			Tuple: tuple(txt("1"), txt("a \"q\" <b>\n\x01é"), null, txt("t"), txt("-9223372036854775808"))}),
		encodeUpdate(&pglogrepl.UpdateMessage{RelationID: 100, NewTuple: tuple(txt("1"), txt("b"), toast, txt("f"), null)}),
		encodeUpdate(&pglogrepl.UpdateMessage{RelationID: 100, OldTupleType: 'K', OldTuple: tuple(txt("1"), null, null, null, null),
			NewTuple: tuple(txt("2"), txt("b"), toast, txt("t"), txt("5"))}),
		encodeUpdate(&pglogrepl.UpdateMessage{RelationID: 200, OldTupleType: 'O', OldTuple: tuple(txt("7"), txt("old doc")),
			NewTuple: tuple(txt("7"), toast)}),
		encodeDelete(&pglogrepl.DeleteMessage{RelationID: 100, OldTupleType: 'K', OldTuple: tuple(txt("3"), null, null, null, null)}),
		encodeDelete(&pglogrepl.DeleteMessage{RelationID: 200, OldTupleType: 'O', OldTuple: tuple(txt("8"), txt("d"))}),
		encodeInsert(&pglogrepl.InsertMessage{RelationID: 100, Tuple: tuple(txt("x"), null, null, null, null)}),                                     // pgx refuses "x"
		encodeInsert(&pglogrepl.InsertMessage{RelationID: 100, Tuple: tuple(txt("1"), null)}),                                                       // too few columns
		encodeInsert(&pglogrepl.InsertMessage{RelationID: 555, Tuple: tuple(txt("1"))}),                                                             // unknown relation
		encodeInsert(&pglogrepl.InsertMessage{RelationID: 200, Tuple: tuple(txt("1"), &pglogrepl.TupleDataColumn{DataType: 'b', Data: []byte{1}})}), // binary
	}
	rng := rand.New(rand.NewPCG(7, 8))
	col := func(i int) *pglogrepl.TupleDataColumn {
		switch rng.IntN(8) {
		case 0:
			return null
		case 1:
			return toast
		}
		switch i {
		case 0, 4:
			if rng.IntN(20) == 0 {
				return txt("not a number")
			}
			return txt(strconv.FormatInt(rng.Int64()>>rng.IntN(63), 10))
		case 3:
			return txt([]string{"t", "f", "true", "maybe"}[rng.IntN(4)])
		}
		b := make([]byte, rng.IntN(30))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		return txt(string(b))
	}
	row := func() *pglogrepl.TupleData {
		return tuple(col(0), col(1), col(2), col(3), col(4))
	}
	for i := 0; i < 3000; i++ {
		switch rng.IntN(4) {
		case 0:
			msgs = append(msgs, encodeInsert(&pglogrepl.InsertMessage{RelationID: 100, Tuple: row()}))
		case 1:
			msgs = append(msgs, encodeUpdate(&pglogrepl.UpdateMessage{RelationID: 100, NewTuple: row()}))
		case 2:
			msgs = append(msgs, encodeUpdate(&pglogrepl.UpdateMessage{RelationID: 100, OldTupleType: 'K', OldTuple: row(), NewTuple: row()}))
		case 3:
			msgs = append(msgs, encodeDelete(&pglogrepl.DeleteMessage{RelationID: 100, OldTupleType: 'O', OldTuple: row()}))
		}
	}
	for i, data := range msgs {
		got, want := decodeBoth(t, in, ref, data)
		if got != want {
			t.Fatalf("message %d %q:\n in place: %s\n   parsed: %s", i, data, got, want)
		}
	}
}

// TestDecodeRowMessageTruncated: every cut short row message is an error
// (pglogrepl.Parse would index past the end), and other messages are left
// to the caller.
func TestDecodeRowMessageTruncated(t *testing.T) {
	t.Parallel()
	in, _ := decoders(t)
	full := [][]byte{
		encodeInsert(&pglogrepl.InsertMessage{RelationID: 100, Tuple: tuple(txt("1"), txt("ab"), null, toast, txt("5"))}),
		encodeUpdate(&pglogrepl.UpdateMessage{RelationID: 100, OldTupleType: 'K', OldTuple: tuple(txt("1"), null, null, null, null),
			NewTuple: tuple(txt("2"), txt("b"), toast, txt("t"), txt("5"))}),
		encodeDelete(&pglogrepl.DeleteMessage{RelationID: 200, OldTupleType: 'O', OldTuple: tuple(txt("8"), txt("d"))}),
	}
	for _, data := range full {
		if _, ok, err := in.DecodeRowMessage(1, data); !ok || err != nil {
			t.Fatalf("whole message %q: ok %v, %v", data, ok, err)
		}
		for n := 1; n < len(data); n++ {
			if _, ok, err := in.DecodeRowMessage(1, data[:n]); !ok || err == nil {
				t.Errorf("%q cut to %d bytes: ok %v, error %v; want an error", data, n, ok, err)
			}
		}
	}
	for _, data := range [][]byte{nil, {'B'}, {'C', 0}, {'R'}, {'T'}, {'Y'}, {'O'}, {'M'}} {
		if _, ok, err := in.DecodeRowMessage(1, data); ok || err != nil {
			t.Errorf("DecodeRowMessage(%q) = ok %v, %v; want it left to the caller", data, ok, err)
		}
	}
}
