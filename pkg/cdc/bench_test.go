package cdc

import (
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// BenchmarkCollapse folds a 1000-change batch: inserts, then updates of
// half the keys with an unchanged column.
func BenchmarkCollapse(b *testing.B) {
	var changes []contracts.Change
	for i := 0; i < 500; i++ {
		changes = append(changes, change(contracts.OpCreate, "10", int64(i), fmt.Sprintf(`{"id":%d}`, i), ``,
			fmt.Sprintf(`{"id":%d,"name":"name %d","big":"x"}`, i, i)))
	}
	for i := 0; i < 500; i++ {
		changes = append(changes, change(contracts.OpUpdate, "11", int64(i), fmt.Sprintf(`{"id":%d}`, i/2), ``,
			fmt.Sprintf(`{"id":%d,"name":"renamed %d"}`, i/2, i), "big"))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Collapse(changes); err != nil {
			b.Fatal(err)
		}
	}
}
