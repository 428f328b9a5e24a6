package pgrepl

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

// TestRowValuesDoNotShareCapacity: a row's values share one buffer, so
// each must be capped at its end; appending to one value (as a consumer
// may) must leave the others as they were.
func TestRowValuesDoNotShareCapacity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := NewDecoder(1, "db", testResolver)
	for _, m := range []pglogrepl.Message{relItems, begin(2, 1)} {
		if _, err := d.Decode(ctx, 1, m); err != nil {
			t.Fatal(err)
		}
	}
	out, err := d.Decode(ctx, 1, &pglogrepl.InsertMessage{RelationID: 100,
		Tuple: tuple(txt("1"), txt("a"), null, txt("t"), txt("5"))})
	if err != nil {
		t.Fatal(err)
	}
	after := out[0].After
	want := map[string]string{"id": "1", "name": `"a"`, "big": "null", "ok": "true", "n": "5"}
	for name := range want {
		_ = append(after[name], "XXXX"...)
	}
	for name, w := range want {
		if got := string(after[name]); got != w {
			t.Errorf("after appending to every value, %s = %s, want %s", name, got, w)
		}
	}
}
