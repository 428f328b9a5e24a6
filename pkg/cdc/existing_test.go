package cdc

import (
	"reflect"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestCollapseFillsExistingValue: a row written before ALTER TABLE … ADD
// COLUMN … DEFAULT holds the default at the source without a change
// saying so. Collapsed in a batch that also holds changes listing the
// column, its state carries the column's existing value; rows written
// after the ALTER keep their own values (also NULL), a later change of an
// old row wins, and a column dropped since (listed only by older changes)
// is not filled.
func TestCollapseFillsExistingValue(t *testing.T) {
	t.Parallel()
	before := []contracts.Column{
		{Name: "id", Type: "integer", BaseType: "integer", Key: true},
		{Name: "v", Type: "text", BaseType: "text"},
		{Name: "dropped", Type: "text", BaseType: "text", ExistingValue: `"old default"`},
	}
	after := []contracts.Column{
		{Name: "id", Type: "integer", BaseType: "integer", Key: true},
		{Name: "v", Type: "text", BaseType: "text"},
		{Name: "num", Type: "numeric(6,2)", BaseType: "numeric(6,2)", ExistingValue: `"7.50"`},
		{Name: "n", Type: "integer", BaseType: "integer", ExistingValue: `3`},
		{Name: "plain", Type: "text", BaseType: "text"},
	}
	mk := func(op contracts.Op, seq int64, cols []contracts.Column, key, aft string) contracts.Change {
		return contracts.Change{V: 1, Op: op, Source: contracts.Source{Schema: "public", Table: "t", CommitLSN: "0/10", Seq: seq},
			Columns: cols, Key: row(key), After: row(aft)}
	}
	changes := []contracts.Change{
		mk(contracts.OpCreate, 1, before, `{"id":1}`, `{"id":1,"v":"a","dropped":"x"}`),
		mk(contracts.OpCreate, 2, before, `{"id":2}`, `{"id":2,"v":"b","dropped":"y"}`),
		mk(contracts.OpCreate, 3, after, `{"id":3}`, `{"id":3,"v":"c","num":null,"n":1,"plain":null}`),
		mk(contracts.OpUpdate, 4, after, `{"id":2}`, `{"id":2,"v":"b2","num":"1.25","n":null,"plain":"p"}`),
	}
	got, err := Collapse(changes)
	if err != nil {
		t.Fatal(err)
	}
	rows := got[0].Rows
	want := []map[string]Value{
		vals("id", "1", "v", "a", "dropped", "x", "num", "7.50", "n", "3"),
		vals("id", "2", "v", "b2", "num", "1.25", "n", "<null>", "plain", "p"),
		vals("id", "3", "v", "c", "num", "<null>", "n", "1", "plain", "<null>"),
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d", len(rows), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(rows[i].Values, want[i]) {
			t.Errorf("row %d: values %v, want %v", i, rows[i].Values, want[i])
		}
	}
	// The column was dropped since: newer changes do not list it, so
	// older rows are not filled with it.
	dropped := []contracts.Change{
		mk(contracts.OpCreate, 1, before, `{"id":5}`, `{"id":5,"v":"e","dropped":"z"}`),
		mk(contracts.OpCreate, 2, after, `{"id":4}`, `{"id":4,"v":"d","num":"2.00","n":2,"plain":null}`),
	}
	got, err = Collapse(dropped)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []map[string]Value{
		vals("id", "5", "v", "e", "dropped", "z", "num", "7.50", "n", "3"),
		vals("id", "4", "v", "d", "num", "2.00", "n", "2", "plain", "<null>"),
	} {
		if !reflect.DeepEqual(got[0].Rows[i].Values, w) {
			t.Errorf("after a column was dropped: row %d values %v, want %v", i, got[0].Rows[i].Values, w)
		}
	}
	// A malformed existing value is refused, not written as NULL.
	bad := mk(contracts.OpCreate, 1, []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true,
		ExistingValue: `{oops`}}, `{"id":1}`, `{"id":1}`)
	if err := Check(&bad); err == nil {
		t.Error("Check accepted a malformed existing value")
	}
}
