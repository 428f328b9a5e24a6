package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// BenchmarkApply applies 1000-row batches (inserts of new keys, then
// updates of the same keys) to a real PostgreSQL.
func BenchmarkApply(b *testing.B) {
	pg := testkit.StartPostgres(b)
	db := pg.CreateDatabase(b, "bench")
	cfg := DefaultConfig()
	cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.SSLMode = pg.Host(), pg.Port, db, "postgres", "disable"
	d := New(cfg, quietLog())
	defer d.Close()
	it := ev{Table: "items", Columns: itemCols}
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		changes := make([]contracts.Change, 0, 1000)
		for i := 0; i < 1000; i++ {
			id := ((n-1)/2)*1000 + i
			if n%2 == 1 {
				changes = append(changes, it.Ins(uint64(n), id, fmt.Sprintf("row %d", id)))
			} else {
				changes = append(changes, it.Upd(uint64(n), id, fmt.Sprintf("updated %d", id)))
			}
		}
		batches, err := cdc.Collapse(changes)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Apply(ctx, batches); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "rows/s")
}
