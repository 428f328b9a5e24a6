package pgrepl

import (
	"context"
	"testing"

	"github.com/jackc/pglogrepl"
)

// BenchmarkDecodeInsert measures the pure decoding of one insert of a
// five-column row (integers, text, bool): the per-change cost capture pays
// before publishing.
func BenchmarkDecodeInsert(b *testing.B) {
	ctx := context.Background()
	d := NewDecoder(1, "db", testResolver)
	if _, err := d.Decode(ctx, 1, relItems); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Decode(ctx, 1, begin(2, 1)); err != nil {
		b.Fatal(err)
	}
	ins := &pglogrepl.InsertMessage{RelationID: 100,
		Tuple: tuple(txt("123456"), txt("a name with \"quotes\""), txt("some longer text value that is not toasted"), txt("t"), txt("9876543210"))}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Decode(ctx, 1, ins); err != nil {
			b.Fatal(err)
		}
	}
}
