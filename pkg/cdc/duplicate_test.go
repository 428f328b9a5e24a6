package cdc

import (
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestCollapseFoldsCopiesOnce: a change delivered twice in one batch is
// folded once. Folding a key change's copy again found its old key already
// moved away and replaced the moved row's state with one lacking the
// columns the key change left unchanged, so the destination got NULL
// where the source held a value (guard spec, seed PCG(14,4)). Changes of
// two tables sharing a version (one multi-table TRUNCATE) both stay.
func TestCollapseFoldsCopiesOnce(t *testing.T) {
	ins := change(contracts.OpCreate, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"B"}`)
	move := change(contracts.OpUpdate, "20", 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"b"}`, "big")
	orders := [][]contracts.Change{
		{ins, move, move},
		{move, ins, move},
		{move, move, ins},
	}
	for i, changes := range orders {
		tbs, err := Collapse(changes)
		if err != nil {
			t.Fatal(err)
		}
		var moved *RowChange
		for j := range tbs[0].Rows {
			if r := &tbs[0].Rows[j]; !r.Delete && r.Key[0].Text == "2" {
				moved = r
			}
		}
		if moved == nil || moved.Values["big"].Text != "B" || len(moved.Unchanged) != 0 {
			t.Errorf("order %d: moved row = %+v, want big = B taken from the insert", i, moved)
		}
	}

	other := change(contracts.OpTruncate, "30", 1, ``, ``, ``)
	other.Source.Table = "u"
	same := change(contracts.OpTruncate, "30", 1, ``, ``, ``)
	tbs, err := Collapse([]contracts.Change{same, other})
	if err != nil {
		t.Fatal(err)
	}
	if len(tbs) != 2 || tbs[0].Truncate == nil || tbs[1].Truncate == nil {
		t.Fatalf("a truncate of two tables at one version: %+v", tbs)
	}
}
