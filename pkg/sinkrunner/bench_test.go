package sinkrunner_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// slowDestination takes a fixed time per Apply without using the CPU, as
// a database's round trips and commit do.
type slowDestination struct{ per time.Duration }

func (d slowDestination) Apply(ctx context.Context, _ []cdc.TableBatch) error {
	select {
	case <-time.After(d.per):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (slowDestination) Close() error { return nil }

// BenchmarkRunner drains a backlog of 20,000 eight-column inserts through
// a runner (batches of 1000) into a destination taking 20ms per Apply, and
// reports changes/s: how much of the fetching, decoding, collapsing and
// acking is hidden behind the destination's time.
func BenchmarkRunner(b *testing.B) {
	const changes = 20000
	n := testkit.StartNATS(b)
	_, js := n.Connect(b)
	ctx := context.Background()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		src := int64(1000 + i)
		cons := benchConsumer(b, js, src)
		subject := contracts.ChangeSubject(src, "public", "orders", 0)
		for k := 0; k < changes; k++ {
			body := fmt.Appendf(nil, `{"v":1,"op":"c","source":{"source_id":%d,"db":"src","schema":"public","table":"orders","lsn":"0/1D%05X","commit_lsn":"0/1E%05X","seq":0,"txid":%d,"commit_time":"2026-11-23T13:42:43.123456Z"},"columns":[{"name":"id","type":"bigint","base_type":"bigint","key":true},{"name":"ver","type":"integer","base_type":"integer"},{"name":"qty","type":"integer","base_type":"integer"},{"name":"amount","type":"bigint","base_type":"bigint"},{"name":"price","type":"double precision","base_type":"double precision"},{"name":"note","type":"text","base_type":"text"},{"name":"ts","type":"timestamp with time zone","base_type":"timestamp with time zone"},{"name":"attrs","type":"jsonb","base_type":"jsonb"}],"key":{"id":%d},"after":{"amount":%d,"attrs":"{\"sku\": \"SKU-%d\", \"qty\": 1}","id":%d,"note":"order %d v1 shipped to warehouse north-east","price":"34.56","qty":42,"ts":"2026-01-01 00:02:03.456+00","ver":1}}`,
				src, k*40, k, 750+k, k, 100000001+k, k, k, k)
			if _, err := js.PublishAsync(subject, body); err != nil {
				b.Fatal(err)
			}
			if k%1000 == 999 {
				// A bounded window: a loaded machine stalls a larger one.
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(time.Minute):
					b.Fatal("publish did not complete")
				}
			}
		}
		total += drainTimed(ctx, b, js, cons, src, changes)
	}
	b.ReportMetric(float64(changes*b.N)/total.Seconds(), "changes/s")
}

// drainTimed runs a runner over cons into a destination taking 20 ms per
// Apply until it applied changes, and returns how long that took (the
// benchmark timer runs only then); the source's stream is deleted after.
func drainTimed(ctx context.Context, b *testing.B, js jetstream.JetStream, cons jetstream.Consumer, src int64, changes uint64) time.Duration {
	b.Helper()
	r := sinkrunner.New(sinkrunner.Config{PipelineID: 1, DestinationID: 1, SourceID: src, BatchSize: 1000},
		cons, slowDestination{per: 20 * time.Millisecond}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.StartTimer()
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	for r.Stats().Applied < changes {
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	_ = js.DeleteStream(ctx, contracts.StreamName(src))
	b.StartTimer()
	return took
}

// timedDestination takes per for each Apply without using the CPU and
// records, per row, the time since the row's "amount" (its publish time in
// Unix nanoseconds) once the Apply returns: the latency the runner adds
// from JetStream to a committed destination.
type timedDestination struct {
	per time.Duration
	mu  sync.Mutex
	lat []time.Duration
}

func (d *timedDestination) Apply(ctx context.Context, batches []cdc.TableBatch) error {
	select {
	case <-time.After(d.per):
	case <-ctx.Done():
		return ctx.Err()
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range batches {
		for _, r := range b.Rows {
			ns, err := strconv.ParseInt(r.Values["amount"].Text, 10, 64)
			if err != nil {
				return err
			}
			d.lat = append(d.lat, now.Sub(time.Unix(0, ns)))
		}
	}
	return nil
}

func (*timedDestination) Close() error { return nil }

// BenchmarkRunnerLatency publishes 5000 changes/s for 4s to a runner with
// the default batching into a destination taking 3ms per Apply, and
// reports the p50 and p99 of publish -> committed: the latency the runner's
// batching adds when changes trickle in.
func BenchmarkRunnerLatency(b *testing.B) {
	const rate, seconds = 5000, 4
	n := testkit.StartNATS(b)
	_, js := n.Connect(b)
	ctx := context.Background()
	var all []time.Duration
	for i := 0; b.Loop(); i++ {
		src := int64(2000 + i)
		cons := benchConsumer(b, js, src)
		dst := &timedDestination{per: 3 * time.Millisecond}
		r := sinkrunner.New(sinkrunner.Config{PipelineID: 1, DestinationID: 1, SourceID: src}, cons, dst, nil,
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		subject := contracts.ChangeSubject(src, "public", "orders", 0)
		tick := time.NewTicker(time.Millisecond)
		for k := 0; k < rate*seconds; {
			<-tick.C
			for j := 0; j < rate/1000; j++ {
				body := fmt.Appendf(nil, `{"v":1,"op":"c","source":{"source_id":%d,"db":"src","schema":"public","table":"orders","lsn":"0/1D%05X","commit_lsn":"0/1E%05X","seq":0,"txid":%d,"commit_time":"2026-11-23T13:42:43.123456Z"},"columns":[{"name":"id","type":"bigint","base_type":"bigint","key":true},{"name":"amount","type":"bigint","base_type":"bigint"},{"name":"note","type":"text","base_type":"text"}],"key":{"id":%d},"after":{"amount":%d,"id":%d,"note":"order %d v1 shipped to warehouse north-east"}}`,
					src, k*40, k, 750+k, k, time.Now().UnixNano(), k, k)
				if _, err := js.PublishAsync(subject, body); err != nil {
					b.Fatal(err)
				}
				k++
			}
		}
		tick.Stop()
		for r.Stats().Applied < rate*seconds {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		_ = js.DeleteStream(ctx, contracts.StreamName(src))
		all = append(all, dst.lat...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

// benchConsumer provisions source src's stream and a pipeline consumer of
// its public.orders, as capture does.
func benchConsumer(b *testing.B, js jetstream.JetStream, src int64) jetstream.Consumer {
	b.Helper()
	ctx := context.Background()
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{MaxBytes: 256 << 20}); err != nil {
		b.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, contracts.StreamName(src),
		natsx.PipelineConsumerConfig(src, 1, 1, []natsx.Table{{Schema: "public", Name: "orders"}}, 0, 1))
	if err != nil {
		b.Fatal(err)
	}
	return cons
}
