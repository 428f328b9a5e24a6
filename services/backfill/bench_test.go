package backfill

import (
	"context"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// BenchmarkSnapshot measures the worker alone (no capture or sink): one
// unfiltered job over a 100k-row table, batches of 10000, published to an
// embedded NATS. It reports rows/s.
func BenchmarkSnapshot(b *testing.B) {
	pg := testkit.StartPostgres(b)
	const rows = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := newFixture(b, pg, rows)
		j, err := f.store.CreateBackfillJob(context.Background(), configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		stop := f.start(testConfig())
		j = f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
		stop()
		b.ReportMetric(float64(j.RowsCopied)/j.FinishedAt.Sub(*j.StartedAt).Seconds(), "rows/s")
	}
}
