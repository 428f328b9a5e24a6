package backfill

import (
	"context"
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// BenchmarkSnapshot measures the worker alone (no capture or sink): one
// unfiltered job over a 100k-row table, published to an embedded NATS. It
// reports rows/s. The top-level run uses the defaults (batches of 10000,
// the default publish window); the sub-benchmarks vary the publish window
// and the batch size, to pick the defaults by measurement:
//
//	go test -run '^$' -bench BenchmarkSnapshot -benchtime 1x -count 6 ./services/backfill/ | benchstat -
func BenchmarkSnapshot(b *testing.B) {
	pg := testkit.StartPostgres(b)
	run := func(b *testing.B, window, batchSize int) {
		const rows = 100_000
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			f := newFixture(b, pg, rows)
			j, err := f.store.CreateBackfillJob(context.Background(), configstore.BackfillInput{PipelineID: f.pipeline.ID,
				Table: "public.items", BatchSize: batchSize})
			if err != nil {
				b.Fatal(err)
			}
			cfg := testConfig()
			if window > 0 {
				cfg.PublishWindow = window
			}
			b.StartTimer()
			stop := f.start(cfg)
			j = f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
			stop()
			b.ReportMetric(float64(j.RowsCopied)/j.FinishedAt.Sub(*j.StartedAt).Seconds(), "rows/s")
		}
	}
	b.Run("defaults", func(b *testing.B) { run(b, 0, 0) })
	for _, w := range []int{1024, 4096, 32768} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) { run(b, w, 0) })
	}
	for _, n := range []int{2000, 50000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { run(b, 0, n) })
	}
}
