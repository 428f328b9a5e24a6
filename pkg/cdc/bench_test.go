package cdc

import (
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/benchcpu"
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

// batchBodies is a fetched batch of capture's messages: 1000 eight-column
// inserts of one table, as in BenchmarkDecode.
func batchBodies() [][]byte {
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"v":1,"op":"c","source":{"source_id":1,"db":"src","schema":"public","table":"orders","lsn":"0/1D%05X","commit_lsn":"0/1E%05X","seq":%d,"txid":%d,"commit_time":"2026-11-23T13:42:43.123456Z"},"columns":[{"name":"id","type":"bigint","base_type":"bigint","key":true},{"name":"ver","type":"integer","base_type":"integer"},{"name":"qty","type":"integer","base_type":"integer"},{"name":"amount","type":"bigint","base_type":"bigint"},{"name":"price","type":"double precision","base_type":"double precision"},{"name":"note","type":"text","base_type":"text"},{"name":"ts","type":"timestamp with time zone","base_type":"timestamp with time zone"},{"name":"attrs","type":"jsonb","base_type":"jsonb"}],"key":{"id":%d},"after":{"amount":%d,"attrs":"{\"sku\": \"SKU-%d\", \"qty\": 1}","id":%d,"note":"order %d v1 shipped to warehouse north-east","price":"34.56","qty":42,"ts":"2026-01-01 00:02:03.456+00","ver":1}}`,
			i*40, i/100, i%100, 750+i/100, 100000+i, 100000001+i, i, 100000+i, 100000+i)
	}
	return bodies
}

// BenchmarkDecodeBatch decodes and collapses one batch as the sink runner
// does (with its Decoder); per batch of 1000 messages.
func BenchmarkDecodeBatch(b *testing.B) {
	bodies := batchBodies()
	b.ReportAllocs()
	defer benchcpu.PerOp(b)()
	for b.Loop() {
		decode := NewDecoder().Decode // a runner's Decoder; its caches fill on the first message
		changes := make([]contracts.Change, 0, len(bodies))
		for _, body := range bodies {
			c, err := decode(body)
			if err != nil {
				b.Fatal(err)
			}
			changes = append(changes, c)
		}
		if _, err := Collapse(changes); err != nil {
			b.Fatal(err)
		}
	}
}
