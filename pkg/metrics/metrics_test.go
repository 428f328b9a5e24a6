package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

var (
	_ sinkrunner.Observer      = (*metrics.Metrics)(nil)
	_ sinkrunner.GuardObserver = (*metrics.Metrics)(nil)
)

// failOnceDriver fails its first Apply with a transient error, then commits.
type failOnceDriver struct {
	mu      sync.Mutex
	failed  bool
	applied int
}

func (d *failOnceDriver) Apply(_ context.Context, batches []cdc.TableBatch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.failed {
		d.failed = true
		return errors.New("connection reset")
	}
	for _, b := range batches {
		d.applied += len(b.Rows)
	}
	return nil
}

func (d *failOnceDriver) Close() error { return nil }

type nopReporter struct{}

func (nopReporter) ReportState(context.Context, sinkrunner.State) error {
	return nil
}

type fakeDLQ struct{}

func (fakeDLQ) Stats(_ context.Context, sourceID, destinationID int64) ([]dlq.TableStats, error) {
	return []dlq.TableStats{{Table: "public.orders", Depth: 3}}, nil
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// TestMetricsUnderLoad publishes changes, applies them through a sink
// runner observed by the metrics and checks the scraped series moved.
func TestMetricsUnderLoad(t *testing.T) {
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const src, pipe, dest = 7, 3, 5
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	cons, err := natsx.EnsurePipelineConsumer(ctx, js, src, pipe, dest, []natsx.Table{{Schema: "public", Name: "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	const total = 200
	commit := time.Now().Add(-2 * time.Second)
	for i := 1; i <= total; i++ {
		ch := contracts.Change{
			V: contracts.EnvelopeVersion, Op: contracts.OpCreate,
			Source: contracts.Source{SourceID: src, Database: "db", Schema: "public", Table: "orders",
				LSN: contracts.FormatLSN(uint64(i)), CommitLSN: contracts.FormatLSN(uint64(i)), Seq: 1, CommitTime: commit},
			Columns: []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true}},
			Key:     contracts.Row{"id": json.RawMessage(itoa(i))},
			After:   contracts.Row{"id": json.RawMessage(itoa(i))},
		}
		body, _ := json.Marshal(ch)
		if _, err := js.Publish(ctx, contracts.ChangeSubject(src, "public", "orders", 0), body); err != nil {
			t.Fatal(err)
		}
		m.ChangePublished(src, "public", "orders")
	}
	m.SlotConfirmed(src, 1000, 1500)

	// Before the sink runs every change is pending on the consumer. The
	// server updates a consumer's pending count after the publish's ack
	// (4 of 30 runs read 192), so the poll is repeated until it is 200.
	p := &metrics.Poller{M: m, JS: js, DLQ: fakeDLQ{}}
	const pending = `rosetta_consumer_pending{consumer="pipeline_3_dest_5",stream="ROSETTA_CDC_7"} 200`
	var out string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		out = scrape(t, m)
		if slices.Contains(strings.Split(out, "\n"), pending) || time.Now().After(deadline) {
			break
		}
	}
	wantLine(t, out, pending)
	wantLine(t, out, `rosetta_dlq_depth{destination_id="5",source_id="7",table="public.orders"} 3`)
	wantLine(t, out, `rosetta_capture_changes_total{source_id="7",table="public.orders"} 200`)
	wantLine(t, out, `rosetta_capture_slot_lag_bytes{source_id="7"} 500`)

	drv := &failOnceDriver{}
	r := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipe, DestinationID: dest, SourceID: src,
		BatchSize: 50, BatchWait: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond,
		Observer: m,
	}, cons, drv, nopReporter{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for r.Stats().Applied < total {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d of %d", r.Stats().Applied, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	out = scrape(t, m)
	wantLine(t, out, `rosetta_sink_changes_applied_total{destination_id="5",pipeline_id="3",table="public.orders"} 200`)
	wantLine(t, out, `rosetta_consumer_pending{consumer="pipeline_3_dest_5",stream="ROSETTA_CDC_7"} 0`)
	wantLine(t, out, `rosetta_errors_total{class="transient",component="sink"} 1`)
	wantLine(t, out, `rosetta_sink_batch_changes_sum{destination_id="5",pipeline_id="3"} 200`)
	wantLine(t, out, `rosetta_sink_end_to_end_seconds_count{destination_id="5",pipeline_id="3"} 200`)
	// Every change was committed on the source at least 2s before.
	wantLine(t, out, `rosetta_sink_end_to_end_seconds_bucket{destination_id="5",pipeline_id="3",le="1"} 0`)
	if !strings.Contains(out, `rosetta_sink_apply_seconds_count{destination_id="5",pipeline_id="3"}`) {
		t.Fatal("no apply latency histogram")
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics
	m.ChangePublished(1, "s", "t")
	m.SlotConfirmed(1, 2, 3)
	m.Error("capture", "x")
	m.BatchApplied(1, 2, nil, time.Second)
	m.ApplyFailed(1, 2, "x")
	m.WALChecked(metrics.WALSample{SourceID: 1})
	m.TombstonesCollected(1, 2, "s.t", 3, 4, 5)
	m.DLQTrimmed(1, 2, "s.t", "age", 3)
}

func TestTombstonesCollected(t *testing.T) {
	m := metrics.New()
	m.TombstonesCollected(7, 2, "app.queue", 120, 5000, 0x16B3F28)
	m.TombstonesCollected(7, 2, "app.queue", 40, 80, 0x16B4000)
	out := scrape(t, m)
	for _, l := range []string{
		`rosetta_guard_tombstones{destination_id="2",pipeline_id="7",table="app.queue"} 40`,
		`rosetta_guard_collect_bound_lsn{destination_id="2",pipeline_id="7",table="app.queue"} 2.3805952e+07`,
		`rosetta_guard_tombstones_collected_total{destination_id="2",pipeline_id="7",table="app.queue"} 5080`,
	} {
		wantLine(t, out, l)
	}
}

func TestWALChecked(t *testing.T) {
	m := metrics.New()
	safe := int64(1 << 20)
	m.WALChecked(metrics.WALSample{SourceID: 2, RetainedBytes: 4096, WALStatus: "unreserved", SafeWALSize: &safe})
	m.WALChecked(metrics.WALSample{SourceID: 3, Err: errors.New("connection refused")})
	out := scrape(t, m)
	for _, l := range []string{
		`rosetta_wal_retained_bytes{source_id="2"} 4096`,
		`rosetta_wal_status{source_id="2",status="unreserved"} 1`,
		`rosetta_wal_status{source_id="2",status="reserved"} 0`,
		`rosetta_wal_safe_wal_size_bytes{source_id="2"} 1.048576e+06`,
		`rosetta_wal_check_ok{source_id="3"} 0`,
		`rosetta_errors_total{class="check_failed",component="wal_monitor"} 1`,
	} {
		wantLine(t, out, l)
	}
}

func wantLine(t *testing.T, out, line string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return
		}
	}
	t.Fatalf("scrape has no line %q; got:\n%s", line, grepRosetta(out))
}

func grepRosetta(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "rosetta_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
