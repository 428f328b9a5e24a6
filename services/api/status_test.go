package api

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestComputeLag is the table of health and lag rules (computeLag).
func TestComputeLag(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	applied := func(ago time.Duration, lsn uint64) configstore.DestinationProgress {
		return configstore.DestinationProgress{AppliedCommitLSN: contracts.FormatLSN(lsn), AppliedCommitTime: now.Add(-ago),
			Throughput: 7.5, At: now.Add(-time.Second)}
	}
	n := func(v int64) *int64 { return &v }
	tests := []struct {
		name        string
		in          lagInput
		wantHealth  configstore.Health
		wantReason  string
		wantSeconds *float64 // nil: want null
		wantBytes   *int64
		wantTput    float64
	}{{
		name:        "idle source: nothing pending is no lag, however old the last change",
		in:          lagInput{Reported: configstore.HealthHealthy, Progress: applied(3*time.Hour, 0x1000), Pending: n(0), SourceLSN: 0x9000},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(0.0), wantBytes: n(0), wantTput: 7.5,
	}, {
		name:        "keeping up: pending and a few seconds behind is healthy",
		in:          lagInput{Reported: configstore.HealthHealthy, Progress: applied(2*time.Second, 0x1000), Pending: n(40), SourceLSN: 0x1800},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(2.0), wantBytes: n(0x800), wantTput: 7.5,
	}, {
		name:        "over the threshold: LAGGING with the numbers",
		in:          lagInput{Reported: configstore.HealthHealthy, Progress: applied(142*time.Second, 0x1000), Pending: n(53000), SourceLSN: 0x5000},
		wantHealth:  configstore.HealthLagging,
		wantReason:  "142 s behind, 53,000 messages pending",
		wantSeconds: ptrTo(142.0), wantBytes: n(0x4000), wantTput: 7.5,
	}, {
		name:        "healthy with notes: the sink's notes are the reason",
		in:          lagInput{Reported: configstore.HealthHealthy, LastError: "public.docs: 3 rows with columns not yet known (keys 1, 5, 9); completion backfill #12 running", Pending: n(0)},
		wantHealth:  configstore.HealthHealthy,
		wantReason:  "public.docs: 3 rows with columns not yet known (keys 1, 5, 9); completion backfill #12 running",
		wantSeconds: ptrTo(0.0), wantBytes: n(0),
	}, {
		name:        "exactly at the threshold is not yet lagging",
		in:          lagInput{Reported: configstore.HealthHealthy, Progress: applied(60*time.Second, 0x1000), Pending: n(1)},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(60.0), wantTput: 7.5,
	}, {
		name:        "error reported: ERROR, the sink's error and how far behind",
		in:          lagInput{Reported: configstore.HealthError, LastError: "connection refused", Progress: applied(90*time.Second, 0x1000), Pending: n(1)},
		wantHealth:  configstore.HealthError,
		wantReason:  "connection refused (90 s behind, 1 message pending)",
		wantSeconds: ptrTo(90.0), wantTput: 7.5,
	}, {
		name:        "paused pipeline: PAUSED even when far behind",
		in:          lagInput{Reported: configstore.HealthHealthy, Paused: true, Progress: applied(time.Hour, 0x1000), Pending: n(12)},
		wantHealth:  configstore.HealthPaused,
		wantReason:  "the pipeline is paused (3,600 s behind, 12 messages pending)",
		wantSeconds: ptrTo(3600.0), wantTput: 7.5,
	}, {
		name:       "reported PAUSED by the sink manager",
		in:         lagInput{Reported: configstore.HealthPaused, Pending: n(0)},
		wantHealth: configstore.HealthPaused, wantReason: "the pipeline is paused",
		wantSeconds: ptrTo(0.0), wantBytes: n(0),
	}, {
		name:       "nothing reported or applied yet, changes pending: UNKNOWN, lag unknown",
		in:         lagInput{Reported: configstore.HealthUnknown, Pending: n(5), SourceLSN: 0x5000},
		wantHealth: configstore.HealthUnknown, wantReason: "no sink has reported on this destination yet (5 messages pending)",
	}, {
		name: "the oldest pending change, when known, measures the lag (not a last change applied long ago)",
		in: lagInput{Reported: configstore.HealthHealthy, Progress: applied(3*time.Hour, 0x1000), Pending: n(3),
			OldestPending: now.Add(-5 * time.Second), SourceLSN: 0x1100},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(5.0), wantBytes: n(0x100), wantTput: 7.5,
	}, {
		name:        "nothing applied yet but the oldest pending change is known: its age is the lag",
		in:          lagInput{Reported: configstore.HealthHealthy, Pending: n(5), OldestPending: now.Add(-90 * time.Second)},
		wantHealth:  configstore.HealthLagging,
		wantReason:  "90 s behind, 5 messages pending",
		wantSeconds: ptrTo(90.0),
	}, {
		name:        "an error a moment after the last change: under 1 s behind",
		in:          lagInput{Reported: configstore.HealthError, LastError: "down", Pending: n(4), OldestPending: now.Add(-300 * time.Millisecond)},
		wantHealth:  configstore.HealthError,
		wantReason:  "down (under 1 s behind, 4 messages pending)",
		wantSeconds: ptrTo(0.3),
	}, {
		name:        "NATS did not answer: lag from the last applied change, pending unknown",
		in:          lagInput{Reported: configstore.HealthHealthy, Progress: applied(5*time.Second, 0x1000), SourceLSN: 0x1000},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(5.0), wantBytes: n(0), wantTput: 7.5,
	}, {
		name: "a stale progress report's throughput is not believed",
		in: lagInput{Reported: configstore.HealthHealthy, Pending: n(0), Progress: configstore.DestinationProgress{
			AppliedCommitLSN: "0/1", AppliedCommitTime: now.Add(-time.Hour), Throughput: 100, At: now.Add(-10 * time.Minute)}},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(0.0), wantBytes: n(0),
	}, {
		name:        "source position behind the applied LSN (an old WAL sample) is 0 bytes, not negative",
		in:          lagInput{Reported: configstore.HealthHealthy, Progress: applied(time.Second, 0x9000), Pending: n(3), SourceLSN: 0x1000},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(1.0), wantBytes: n(0), wantTput: 7.5,
	}, {
		name:        "commit time ahead of this clock is 0 s, not negative",
		in:          lagInput{Reported: configstore.HealthHealthy, Progress: applied(-3*time.Second, 0x1000), Pending: n(3)},
		wantHealth:  configstore.HealthHealthy,
		wantSeconds: ptrTo(0.0), wantTput: 7.5,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := computeLag(tt.in, now, time.Minute)
			if got.Health != tt.wantHealth || got.Reason != tt.wantReason {
				t.Errorf("health = %s %q, want %s %q", got.Health, got.Reason, tt.wantHealth, tt.wantReason)
			}
			if !eqPtr(got.LagSeconds, tt.wantSeconds) {
				t.Errorf("lag_seconds = %v, want %v", show(got.LagSeconds), show(tt.wantSeconds))
			}
			if !eqPtr(got.LagBytes, tt.wantBytes) {
				t.Errorf("lag_bytes = %v, want %v", show(got.LagBytes), show(tt.wantBytes))
			}
			if !eqPtr(got.Pending, tt.in.Pending) || got.Throughput != tt.wantTput {
				t.Errorf("pending %v throughput %v, want %v %v", show(got.Pending), got.Throughput, show(tt.in.Pending), tt.wantTput)
			}
		})
	}
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func show[T any](p *T) any {
	if p == nil {
		return "null"
	}
	return *p
}

// testLagFromStream checks lag_seconds against a real JetStream consumer:
// with changes pending it is the age of the oldest change not acked (not
// of the last change applied, two minutes ago here), it follows the ack
// floor, and it is 0 once everything is acked. Its own NATS keeps its
// stream apart from the other subtests' (their ids are the same).
func testLagFromStream(t *testing.T, f *fixture) {
	_, js := testkit.StartNATS(t).Connect(t)
	c := newClient(t, f, js, nil)
	ctx := context.Background()
	var src, d idView
	var p pipelineView
	c.must(201, "POST", "/sources", c.sourceBody("src"), &src)
	c.must(201, "POST", "/destinations", c.pgDestBody("d"), &d)
	c.must(201, "POST", "/pipelines", map[string]any{"name": "p", "source_id": src.ID, "destination_ids": []int64{d.ID},
		"tables": []string{"public.orders", "public.customers"}}, &p)
	c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", p.ID), nil, nil)
	if _, err := natsx.EnsureSourceStream(ctx, js, src.ID, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	cons, err := natsx.EnsurePipelineConsumer(ctx, js, src.ID, p.ID, d.ID,
		[]natsx.Table{{Schema: "public", Name: "orders"}, {Schema: "public", Name: "customers"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.store.SetDestinationState(ctx, configstore.DestinationState{PipelineID: p.ID, DestinationID: d.ID, Health: configstore.HealthHealthy}); err != nil {
		t.Fatal(err)
	}
	if err := c.store.SetDestinationProgress(ctx, configstore.DestinationProgress{PipelineID: p.ID, DestinationID: d.ID,
		AppliedCommitLSN: "0/100", AppliedCommitTime: time.Now().Add(-2 * time.Minute), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	publish := func(table string, lsn uint64, age time.Duration) {
		t.Helper()
		// A version 2 message (testLagAcrossPartitions publishes
		// version 1): the commit time is read from either.
		ch := contracts.Change{V: contracts.MessageVersion, Op: contracts.OpTruncate, Source: contracts.Source{SourceID: src.ID,
			Schema: "public", Table: table, LSN: contracts.FormatLSN(lsn), CommitLSN: contracts.FormatLSN(lsn), Seq: 1,
			CommitTime: time.Now().Add(-age)}}
		data, err := contracts.MessageOf([]contracts.Change{ch}).AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, contracts.ChangeSubject(src.ID, "public", table, 0), data); err != nil {
			t.Fatal(err)
		}
	}
	// An unwatched table's change first: it is not this consumer's.
	publish("other", 0x150, 10*time.Minute)
	publish("customers", 0x200, 30*time.Second)
	publish("orders", 0x300, 10*time.Second)
	get := func() destinationStateView {
		t.Helper()
		var detail pipelineDetail
		c.must(200, "GET", fmt.Sprintf("/pipelines/%d", p.ID), nil, &detail)
		return detail.Destinations[0]
	}
	ds := get()
	if ds.Pending == nil || *ds.Pending != 2 || ds.LagSeconds == nil || *ds.LagSeconds < 29 || *ds.LagSeconds > 40 || ds.Health != "HEALTHY" {
		t.Fatalf("with two changes pending, the oldest 30s old: %+v (lag %v)", ds, show(ds.LagSeconds))
	}
	// Apply (ack) the first: the oldest pending is now 10s old.
	ackOne(ctx, t, cons)
	ds = get()
	if ds.Pending == nil || *ds.Pending != 1 || ds.LagSeconds == nil || *ds.LagSeconds < 9 || *ds.LagSeconds > 20 {
		t.Fatalf("with one change pending, 10s old: %+v (lag %v)", ds, show(ds.LagSeconds))
	}
	ackOne(ctx, t, cons)
	ds = get()
	if ds.Pending == nil || *ds.Pending != 0 || ds.LagSeconds == nil || *ds.LagSeconds != 0 || ds.Health != "HEALTHY" {
		t.Fatalf("with nothing pending: %+v (lag %v)", ds, show(ds.LagSeconds))
	}
}

// testLagAcrossPartitions: with a source of two partitions, pending sums
// both partitions' consumers and lag is the age of the oldest change any
// of them has not acked.
func testLagAcrossPartitions(t *testing.T, f *fixture) {
	_, js := testkit.StartNATS(t).Connect(t)
	c := newClient(t, f, js, nil)
	ctx := context.Background()
	var src, d idView
	var p pipelineView
	body := c.sourceBody("src")
	body["partitions"] = 2
	c.must(201, "POST", "/sources", body, &src)
	c.must(201, "POST", "/destinations", c.pgDestBody("d"), &d)
	c.must(201, "POST", "/pipelines", map[string]any{"name": "p", "source_id": src.ID, "destination_ids": []int64{d.ID},
		"tables": []string{"public.orders"}}, &p)
	c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", p.ID), nil, nil)
	if _, err := natsx.EnsureSourceStream(ctx, js, src.ID, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsurePipelineConsumers(ctx, js, src.ID, p.ID, d.ID, []natsx.Table{{Schema: "public", Name: "orders"}}, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.store.SetDestinationState(ctx, configstore.DestinationState{PipelineID: p.ID, DestinationID: d.ID, Health: configstore.HealthHealthy}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []struct {
		partition int
		lsn       uint64
		age       time.Duration
	}{{0, 0x200, 30 * time.Second}, {1, 0x300, 10 * time.Second}} {
		data, _ := json.Marshal(contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpCreate, Source: contracts.Source{SourceID: src.ID,
			Schema: "public", Table: "orders", CommitLSN: contracts.FormatLSN(ch.lsn), Seq: 1, CommitTime: time.Now().Add(-ch.age)}})
		if _, err := js.Publish(ctx, contracts.ChangeSubject(src.ID, "public", "orders", ch.partition), data); err != nil {
			t.Fatal(err)
		}
	}
	get := func() destinationStateView {
		t.Helper()
		var detail pipelineDetail
		c.must(200, "GET", fmt.Sprintf("/pipelines/%d", p.ID), nil, &detail)
		return detail.Destinations[0]
	}
	ds := get()
	if ds.Pending == nil || *ds.Pending != 2 || ds.LagSeconds == nil || *ds.LagSeconds < 29 || *ds.LagSeconds > 40 {
		t.Fatalf("one change pending on each partition, the oldest 30s old: %+v (lag %v)", ds, show(ds.LagSeconds))
	}
	// Partition 0's sink applies its change: partition 1's, 10s old, is left.
	cons, err := natsx.PipelineConsumers(ctx, js, src.ID, p.ID, d.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	ackOne(ctx, t, cons[0])
	ds = get()
	if ds.Pending == nil || *ds.Pending != 1 || ds.LagSeconds == nil || *ds.LagSeconds < 9 || *ds.LagSeconds > 20 {
		t.Fatalf("partition 1's change pending, 10s old: %+v (lag %v)", ds, show(ds.LagSeconds))
	}
}

// ackOne applies one message as a sink would: fetch it in the sinks'
// priority group and ack it, confirmed.
func ackOne(ctx context.Context, t *testing.T, cons jetstream.Consumer) {
	t.Helper()
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second), jetstream.FetchPriorityGroup(natsx.SinkGroup))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
