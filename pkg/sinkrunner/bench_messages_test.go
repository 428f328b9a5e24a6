package sinkrunner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// BenchmarkRunnerMessages is BenchmarkRunner (20,000 eight-column inserts,
// batches of 1000 changes, 20ms per Apply) with the changes published as
// version 2 messages of per changes each (transactions of per inserts),
// and reports changes/s: what reading, settling and acking per message
// instead of per change saves.
func BenchmarkRunnerMessages(b *testing.B) {
	const changes = 20000
	n := testkit.StartNATS(b)
	_, js := n.Connect(b)
	ctx := context.Background()
	cols := []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
		{Name: "ver", Type: "integer", BaseType: "integer"}, {Name: "qty", Type: "integer", BaseType: "integer"},
		{Name: "amount", Type: "bigint", BaseType: "bigint"}, {Name: "price", Type: "double precision", BaseType: "double precision"},
		{Name: "note", Type: "text", BaseType: "text"}, {Name: "ts", Type: "timestamp with time zone", BaseType: "timestamp with time zone"},
		{Name: "attrs", Type: "jsonb", BaseType: "jsonb"}}
	for _, per := range []int{1, 100, contracts.ChunkChanges} {
		b.Run(fmt.Sprint(per), func(b *testing.B) {
			var total time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				src := int64(3000 + per*10 + i)
				cons := benchConsumer(b, js, src)
				subject := contracts.ChangeSubject(src, "public", "orders", 0)
				for first := 0; first < changes; first += per {
					msg := make([]contracts.Change, 0, per)
					for k := first; k < min(first+per, changes); k++ {
						id := json.RawMessage(fmt.Sprint(k))
						msg = append(msg, contracts.Change{V: contracts.MessageVersion, Op: contracts.OpCreate, Columns: cols,
							Source: contracts.Source{SourceID: src, Database: "src", Schema: "public", Table: "orders",
								LSN: contracts.FormatLSN(uint64(k * 40)), CommitLSN: contracts.FormatLSN(uint64(first*40 + 1<<20)),
								Seq: int64(k - first + 1), TxID: uint32(750 + first), CommitTime: time.Date(2026, 11, 23, 13, 42, 43, 123456000, time.UTC)},
							Key: contracts.Row{"id": id},
							After: contracts.Row{"id": id, "amount": json.RawMessage(fmt.Sprint(100000001 + k)),
								"attrs": json.RawMessage(fmt.Sprintf(`"{\"sku\": \"SKU-%d\", \"qty\": 1}"`, k)),
								"note":  json.RawMessage(fmt.Sprintf(`"order %d v1 shipped to warehouse north-east"`, k)),
								"price": json.RawMessage(`"34.56"`), "qty": json.RawMessage("42"),
								"ts": json.RawMessage(`"2026-01-01 00:02:03.456+00"`), "ver": json.RawMessage("1")}})
					}
					body, err := contracts.MessageOf(msg).AppendJSON(nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := js.PublishAsync(subject, body); err != nil {
						b.Fatal(err)
					}
					select {
					case <-js.PublishAsyncComplete():
					case <-time.After(time.Minute):
						b.Fatal("publish did not complete")
					}
				}
				total += drainTimed(ctx, b, js, cons, src, changes)
			}
			b.ReportMetric(float64(changes*b.N)/total.Seconds(), "changes/s")
		})
	}
}
