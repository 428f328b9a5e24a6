package cdc

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestDroppedAndWithout: a batch holding changes from before and after a
// DROP COLUMN names the column in Dropped, and Without removes it from the
// columns and rows without touching the batch it was called on.
func TestDroppedAndWithout(t *testing.T) {
	t.Parallel()
	before := []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true},
		{Name: "a", Type: "text", BaseType: "text"}, {Name: "b", Type: "text", BaseType: "text"}}
	after := before[:2]
	change := func(lsn string, cols []contracts.Column, row string, unchanged ...string) contracts.Change {
		var r contracts.Row
		if err := json.Unmarshal([]byte(row), &r); err != nil {
			t.Fatal(err)
		}
		return contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpUpdate,
			Source:  contracts.Source{SourceID: 1, Schema: "s", Table: "t", CommitLSN: lsn, Seq: 1},
			Columns: cols, Key: contracts.Row{"id": r["id"]}, After: r, Unchanged: unchanged}
	}
	got, err := Collapse([]contracts.Change{
		change("0/10", before, `{"id":1,"a":"x","b":"old"}`),
		change("0/11", before, `{"id":2,"a":"y"}`, "b"),
		change("0/12", after, `{"id":3,"a":"z"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := got[0]
	if !reflect.DeepEqual(b.Dropped, []string{"b"}) {
		t.Fatalf("Dropped = %v, want [b]", b.Dropped)
	}
	w := b.Without(b.Dropped)
	if len(w.Columns) != 2 || w.Dropped != nil {
		t.Fatalf("Without: columns %v, dropped %v", w.Columns, w.Dropped)
	}
	if _, ok := w.Rows[0].Values["b"]; ok || len(w.Rows[1].Unchanged) != 0 {
		t.Fatalf("Without kept b: %+v", w.Rows[:2])
	}
	if _, ok := b.Rows[0].Values["b"]; !ok || len(b.Rows[1].Unchanged) != 1 || len(b.Columns) != 3 {
		t.Fatalf("Without modified the batch: %+v", b)
	}
	if !reflect.DeepEqual(w.Rows[2], b.Rows[2]) {
		t.Fatalf("row 3 differs: %+v", w.Rows[2])
	}
	// A batch whose changes all list the same columns drops nothing.
	got, _ = Collapse([]contracts.Change{change("0/12", after, `{"id":3,"a":"z"}`)})
	if got[0].Dropped != nil {
		t.Fatalf("Dropped = %v, want nil", got[0].Dropped)
	}
}
