package cdc

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestFollowRenames: a batch holding changes from before and after a
// RENAME COLUMN (same attnum, new name) pairs the names, moves the values
// older rows hold under the old name to the new one (a newer value wins),
// and leaves a really dropped column (no attnum match) dropped.
func TestFollowRenames(t *testing.T) {
	t.Parallel()
	before := []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true, Attnum: 1},
		{Name: "a", Type: "text", BaseType: "text", Attnum: 2}, {Name: "gone", Type: "text", BaseType: "text", Attnum: 3}}
	after := []contracts.Column{before[0], {Name: "b", Type: "text", BaseType: "text", Attnum: 2}}
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
		change("0/10", before, `{"id":1,"a":"x","gone":"g"}`),
		change("0/11", before, `{"id":2,"gone":"g"}`, "a"),
		change("0/12", before, `{"id":3,"a":"old","gone":"g"}`),
		change("0/13", after, `{"id":3,"b":"new"}`),
		change("0/14", after, `{"id":4,"b":"y"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := got[0]
	if r := b.Renamed(); !reflect.DeepEqual(r, map[string]string{"a": "b"}) {
		t.Fatalf("Renamed = %v, want a→b", r)
	}
	f := b.FollowRenames().Without(b.Dropped)
	if len(f.Columns) != 2 || f.Columns[1].Name != "b" {
		t.Fatalf("columns %+v", f.Columns)
	}
	text := func(r RowChange, col string) string { return r.Values[col].Text }
	if text(f.Rows[0], "b") != "x" || len(f.Rows[0].Values) != 2 {
		t.Errorf("row 1: %+v, want b=x and no old name", f.Rows[0].Values)
	}
	if !reflect.DeepEqual(f.Rows[1].Unchanged, []string{"b"}) {
		t.Errorf("row 2 unchanged %v, want [b]", f.Rows[1].Unchanged)
	}
	if text(f.Rows[2], "b") != "new" {
		t.Errorf("row 3: %+v, want the newer b=new", f.Rows[2].Values)
	}
	if text(f.Rows[3], "b") != "y" {
		t.Errorf("row 4: %+v", f.Rows[3].Values)
	}
	if _, ok := b.Rows[0].Values["a"]; !ok || b.Rows[1].Unchanged[0] != "a" {
		t.Errorf("FollowRenames modified the batch: %+v", b.Rows[:2])
	}
	// Without attnums nothing is paired: the old behaviour.
	for i := range before {
		before[i].Attnum = 0
	}
	after[1].Attnum = 0
	got, _ = Collapse([]contracts.Change{change("0/10", before, `{"id":1,"a":"x"}`), change("0/11", after, `{"id":2,"b":"y"}`)})
	if r := got[0].Renamed(); r != nil {
		t.Errorf("Renamed without attnums = %v, want nil", r)
	}
}
