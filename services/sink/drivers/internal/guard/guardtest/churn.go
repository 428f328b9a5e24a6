package guardtest

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// ConfirmedAt stands in for capture's confirmed position
// (sinkrunner.GuardBounds): every change published from now on is at least
// at it. No dead letters, no backfills.
type ConfirmedAt contracts.Version

// PublishFloor returns c for every table.
func (c ConfirmedAt) PublishFloor(_ context.Context, _, _, _ int64, tables []string) (map[string]contracts.Version, error) {
	out := map[string]contracts.Version{}
	for _, t := range tables {
		out[t] = contracts.Version(c)
	}
	return out, nil
}

// DeadLetterFloor returns no dead letters.
func (ConfirmedAt) DeadLetterFloor(context.Context, int64, int64, []string) (map[string]contracts.Version, error) {
	return map[string]contracts.Version{}, nil
}

// ChurnHarness is the destination Churn drives: a driver and a way to read
// back what it wrote for the source table app.items (cdctest.ItemColumns),
// named as the driver names it.
type ChurnHarness struct {
	// Driver must be a sinkrunner.TombstoneCollector: the runner collects
	// only from one.
	Driver sinkrunner.Driver
	// Rows counts the destination table's rows, Tombstones the tombstones
	// its guard keeps. Both fail t themselves when they cannot read.
	Rows, Tombstones func() int
}

// The source, pipeline and destination of ItemsConsumer.
const ItemsSource, ItemsPipeline, ItemsDest = 7, 3, 4

// ItemsConsumer starts an embedded JetStream with source ItemsSource's
// stream (at most maxBytes) and the durable consumer of pipeline
// ItemsPipeline to destination ItemsDest for app.items
// (cdctest.ItemColumns), as the drivers' runner tests use them.
func ItemsConsumer(t testing.TB, maxBytes int64) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	if _, err := natsx.EnsureSourceStream(ctx, js, ItemsSource, natsx.StreamLimits{MaxBytes: maxBytes}); err != nil {
		t.Fatal(err)
	}
	cons, err := natsx.EnsurePipelineConsumer(ctx, js, ItemsSource, ItemsPipeline, ItemsDest, []natsx.Table{{Schema: "app", Name: "items"}})
	if err != nil {
		t.Fatal(err)
	}
	return js, cons
}

// Counter turns a test env's query runner, which returns rows as text,
// into the counts ChurnHarness takes: count(q) reads q's one integer and
// fails t when it cannot.
func Counter(t testing.TB, rows func(q string) []string) func(q string) func() int {
	return func(q string) func() int {
		return func() int {
			got := rows(q)
			n, err := strconv.Atoi(strings.Join(got, ""))
			if err != nil || len(got) != 1 {
				t.Fatalf("%s: %q", q, got)
			}
			return n
		}
	}
}

// ChurnSource is the source table Churn publishes ("schema.table").
const ChurnSource = "app.items"

// Churn inserts and deletes keys through a real sink runner over an
// embedded JetStream consumer, lets the runner's periodic collection run
// (every 200 ms), and checks that the tombstones kept drop to at most 1 %
// of the keys deleted with no row left; then every insert is replayed
// through the runner (as a dead-letter replay brings it) and none
// resurrects its row: the floor refuses what the collected tombstones did.
func Churn(t testing.TB, keys int, h ChurnHarness) {
	if _, ok := h.Driver.(sinkrunner.TombstoneCollector); !ok {
		t.Fatalf("churn: driver %T collects no tombstones", h.Driver)
	}
	ctx := context.Background()
	const source, pipeline, dest = ItemsSource, ItemsPipeline, ItemsDest
	js, cons := ItemsConsumer(t, 2<<30)
	// Capture has confirmed past every change of the test.
	bounds := ConfirmedAt{LSN: uint64(3*keys + 100)}
	runner := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipeline, DestinationID: dest, SourceID: source,
		Tables: []string{ChurnSource}, Bounds: bounds, CollectEvery: 200 * time.Millisecond,
	}, cons, h.Driver, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	it := cdctest.Events{Table: "items", Columns: cdctest.ItemColumns}
	subject := contracts.ChangeSubject(source, "app", "items", 0)
	var published uint64
	publish := func(c contracts.Change) {
		c.Source.SourceID = source
		body, err := c.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync(subject, body); err != nil {
			t.Fatal(err)
		}
		published++
	}
	stored := func() {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			t.Fatal("publishes not acknowledged")
		}
	}
	settled := func() {
		stored()
		cdctest.WaitFor(t, "every change applied", 10*time.Minute, func() bool {
			info, err := cons.Info(ctx)
			return err == nil && info.AckFloor.Stream == published && info.NumAckPending == 0 && info.NumPending == 0
		})
	}

	t.Logf("%s start", time.Now().Format("15:04:05.000"))
	// Key i is inserted at 2i and deleted at 2i+1, in windows of 1,000
	// keys, so that deletes follow their inserts closely, as in a queue.
	const window = 1000
	for lo := 0; lo < keys; lo += window {
		for i := lo; i < min(lo+window, keys); i++ {
			publish(it.Ins(uint64(2*i+2), i, "queued"))
		}
		for i := lo; i < min(lo+window, keys); i++ {
			publish(it.Del(uint64(2*i+3), i))
		}
		stored()
	}
	t.Logf("%s published", time.Now().Format("15:04:05.000"))
	settled()
	t.Logf("%s settled", time.Now().Format("15:04:05.000"))
	cdctest.WaitFor(t, "tombstones collected below 1 % of the keys deleted", 2*time.Minute, func() bool {
		return h.Tombstones() <= keys/100
	})
	if rows := h.Rows(); rows != 0 {
		t.Fatalf("rows after the churn = %d, want 0", rows)
	}
	kept := h.Tombstones()
	t.Logf("%s collected", time.Now().Format("15:04:05.000"))

	// Every insert again, as a dead-letter replay brings it: through the
	// runner's driver, between its batches, 10,000 per Replay.
	stale := make([]contracts.Change, 0, 10000)
	for lo := 0; lo < keys; lo += 10000 {
		stale = stale[:0]
		for i := lo; i < min(lo+10000, keys); i++ {
			c := it.Ins(uint64(2*i+2), i, "stale")
			c.Source.SourceID = source
			stale = append(stale, c)
		}
		failed, err := runner.Replay(ctx, stale)
		if err != nil {
			t.Fatal(err)
		}
		for i, err := range failed {
			if err != nil {
				t.Fatalf("replay of %v: %v", stale[i].Key, err)
			}
		}
	}
	if rows := h.Rows(); rows != 0 {
		t.Fatalf("stale inserts resurrected %d of %d deleted rows", rows, keys)
	}
	if tb, ok := t.(*testing.T); ok {
		tb.Logf("%d keys inserted and deleted: %d tombstones kept after collection (limit %d)", keys, kept, keys/100)
	}
}
