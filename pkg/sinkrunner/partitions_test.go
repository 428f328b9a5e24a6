package sinkrunner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// partitionFixture is one pipeline destination's consumers on a source of
// parts partitions, and runners started on them as sink instances.
type partitionFixture struct {
	t     *testing.T
	js    jetstream.JetStream
	src   int64
	parts int
	used  map[int]bool // partitions the published changes used
}

func newPartitionFixture(t *testing.T, parts int) *partitionFixture {
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	nextSource.Lock()
	nextSource.n++
	src := nextSource.n
	nextSource.Unlock()
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsurePipelineConsumers(ctx, js, src, 1, 1, []natsx.Table{{Schema: "public", Name: "t"}}, parts); err != nil {
		t.Fatal(err)
	}
	return &partitionFixture{t: t, js: js, src: src, parts: parts, used: map[int]bool{}}
}

// start runs a runner on the partitions' consumers with handles of its
// own, as another process has; share is its Config.Share.
func (f *partitionFixture) start(share func() int) *instance {
	t := f.t
	cons, err := natsx.PipelineConsumers(context.Background(), f.js, f.src, 1, 1, f.parts)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{drv: &recordingDriver{rows: map[string]cdc.Value{}, history: map[string][]string{}}, done: make(chan error, 1)}
	cfg := sinkrunner.Config{SourceID: f.src, PipelineID: 1, DestinationID: 1, BatchSize: 100, BatchWait: 20 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, ReportEvery: 10 * time.Millisecond,
		Unpin: natsx.Unpinner(f.js), Share: share}
	r := sinkrunner.NewPartitioned(cfg, cons, in.drv, &recordingReporter{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { in.done <- r.Run(rctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// publish inserts ids from..to, each on its key's partition.
func (f *partitionFixture) publish(from, to int) {
	for id := from; id <= to; id++ {
		key := contracts.Row{"id": json.RawMessage(strconv.Itoa(id))}
		part := contracts.Partition(key, f.parts)
		f.used[part] = true
		c := contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpCreate,
			Source:  contracts.Source{SourceID: f.src, Schema: "public", Table: "t", CommitLSN: "0/10", Seq: int64(id)},
			Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
			Key:     key, After: contracts.Row{"id": key["id"], "name": json.RawMessage(`"v"`)}}
		body, _ := json.Marshal(c)
		if _, err := f.js.Publish(context.Background(), contracts.ChangeSubject(f.src, "public", "t", part), body); err != nil {
			f.t.Fatal(err)
		}
	}
}

// has reports whether in applied every id from..to.
func has(in *instance, from, to int) bool {
	rows, _ := in.drv.snapshot()
	for id := from; id <= to; id++ {
		if _, ok := rows[strconv.Itoa(id)]; !ok {
			return false
		}
	}
	return true
}

// drained waits until every partition's consumer has acked everything.
func (f *partitionFixture) drained() {
	for p := range f.parts {
		name := contracts.PartitionConsumerName(1, 1, p, f.parts)
		eventually(f.t, fmt.Sprintf("%s acked everything", name), func() bool {
			c, err := f.js.Consumer(context.Background(), contracts.StreamName(f.src), name)
			if err != nil {
				return false
			}
			ci := c.CachedInfo()
			return ci.NumPending == 0 && ci.NumAckPending == 0
		})
	}
}

// TestPartitionedRunnersShareByPin: two runners on the 4 partitions'
// consumers of one pipeline destination, as two sink instances: the first
// to pull holds every partition and applies everything, the second stands
// by with nothing; stopped, the first releases its pins and the second
// takes every partition at its next pull, well within the pinned TTL.
func TestPartitionedRunnersShareByPin(t *testing.T) {
	t.Parallel()
	const parts = 4
	f := newPartitionFixture(t, parts)

	a := f.start(nil)
	f.publish(1, 40)
	eventually(t, "the first instance applied ids 1-40", func() bool { return has(a, 1, 40) })
	b := f.start(nil)
	f.publish(41, 80)
	eventually(t, "the first instance applied ids 41-80", func() bool { return has(a, 41, 80) })
	time.Sleep(300 * time.Millisecond) // several of the standby's pulls
	if rows, calls := b.drv.snapshot(); len(rows) > 0 || calls > 0 {
		t.Fatalf("the standby applied %d rows in %d calls while the first held the partitions", len(rows), calls)
	}
	if len(f.used) != parts {
		t.Fatalf("the changes used partitions %v; want all %d", f.used, parts)
	}

	a.stop(t)
	began := time.Now()
	f.publish(81, 120)
	for !has(b, 81, 120) {
		if time.Since(began) > natsx.ConsumerPinnedTTL/2 {
			rows, _ := b.drv.snapshot()
			t.Fatalf("after the first stopped, the standby had %d of ids 81-120 after %s: the pins were not released", len(rows), time.Since(began))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the standby took every partition %s after the first stopped", time.Since(began).Round(time.Millisecond))
	f.drained()
}

// TestPartitionedRunnersSpread: with a share (Config.Share), a second
// instance gets half of the partitions the first one held: the first gives
// two up between batches, after their changes are acked, so every change
// is applied once and by one instance; stopped, the second gives them back.
func TestPartitionedRunnersSpread(t *testing.T) {
	t.Parallel()
	const parts, round = 4, 40
	f := newPartitionFixture(t, parts)
	var instances atomic.Int32
	instances.Store(1)
	share := func() int {
		n := int(instances.Load())
		return (parts + n - 1) / n
	}
	a := f.start(share)
	f.publish(1, round)
	eventually(t, "the first instance applied the first round", func() bool { return has(a, 1, round) })

	b := f.start(share)
	instances.Store(2)
	// partitionsOf is which partitions in applied of ids from..to.
	partitionsOf := func(in *instance, from, to int) map[int]bool {
		rows, _ := in.drv.snapshot()
		out := map[int]bool{}
		for id := from; id <= to; id++ {
			if _, ok := rows[strconv.Itoa(id)]; ok {
				out[contracts.Partition(contracts.Row{"id": json.RawMessage(strconv.Itoa(id))}, parts)] = true
			}
		}
		return out
	}
	both := func(from, to int) bool {
		ra, _ := a.drv.snapshot()
		rb, _ := b.drv.snapshot()
		for id := from; id <= to; id++ {
			_, inA := ra[strconv.Itoa(id)]
			_, inB := rb[strconv.Itoa(id)]
			if !inA && !inB {
				return false
			}
		}
		return true
	}
	next := round + 1
	began := time.Now()
	for {
		from, to := next, next+round-1
		next += round
		f.publish(from, to)
		eventually(t, fmt.Sprintf("ids %d-%d applied", from, to), func() bool { return both(from, to) })
		pa, pb := partitionsOf(a, from, to), partitionsOf(b, from, to)
		if len(pa) == parts/2 && len(pb) == parts/2 {
			t.Logf("the partitions were spread %s after the second instance started", time.Since(began).Round(time.Millisecond))
			break
		}
		if time.Since(began) > 15*time.Second {
			t.Fatalf("15s after the second instance started, a round's partitions went %v to the first and %v to the second; want %d each",
				pa, pb, parts/2)
		}
		time.Sleep(100 * time.Millisecond)
	}

	instances.Store(1)
	b.stop(t)
	eventually(t, "the first instance holds every partition again", func() bool {
		from, to := next, next+round-1
		next += round
		f.publish(from, to)
		time.Sleep(200 * time.Millisecond)
		return has(a, from, to)
	})
	f.drained()
	// Every id applied once, by one instance: a partition changed hands
	// only after its delivered changes were acked.
	for _, in := range []*instance{a, b} {
		in.drv.mu.Lock()
	}
	defer a.drv.mu.Unlock()
	defer b.drv.mu.Unlock()
	for id := 1; id < next; id++ {
		k := strconv.Itoa(id)
		if n := len(a.drv.history[k]) + len(b.drv.history[k]); n > 1 {
			t.Errorf("id %d applied %d times (first instance %d, second %d)", id, n, len(a.drv.history[k]), len(b.drv.history[k]))
		}
	}
}

// instance is one runner on the partitions' consumers, as one sink
// process runs.
type instance struct {
	drv     *recordingDriver
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
}

// stop cancels the instance's runner and waits for it.
func (in *instance) stop(t *testing.T) {
	in.stopped.Do(func() {
		in.cancel()
		if err := <-in.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestUnpinLeavesAMovedPin: an instance whose apply outlasts the pinned
// TTL loses its pins to another instance without noticing (it pulls
// nothing meanwhile); stopping, it must not release the pins, which are
// the other instance's now: JetStream's unpin releases whoever holds them.
func TestUnpinLeavesAMovedPin(t *testing.T) {
	t.Parallel()
	const parts = 2
	f := newPartitionFixture(t, parts)
	a := f.start(nil)
	gate := make(chan struct{})
	a.drv.mu.Lock()
	a.drv.gate = gate
	a.drv.mu.Unlock()
	f.publish(1, 400) // more than a batch waits behind the held apply
	pinsOf := func() []string {
		out := make([]string, parts)
		for p := range parts {
			c, err := f.js.Consumer(context.Background(), contracts.StreamName(f.src), contracts.PartitionConsumerName(1, 1, p, parts))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range c.CachedInfo().PriorityGroups {
				if g.Group == natsx.SinkGroup {
					out[p] = g.PinnedClientID
				}
			}
		}
		return out
	}
	first := pinsOf()
	b := f.start(nil)
	deadline := time.Now().Add(natsx.ConsumerPinnedTTL + 10*time.Second)
	var moved []string
	for {
		now := pinsOf()
		if now[0] != "" && now[1] != "" && now[0] != first[0] && now[1] != first[1] {
			moved = now
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pins never moved off the held instance: first %v, now %v", first, now)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.stop(t)
	time.Sleep(time.Second) // several of b's pulls
	if now := pinsOf(); !slices.Equal(now, moved) {
		t.Fatalf("stopping the instance that lost its pins released the new holder's: %v, then %v", moved, now)
	}
	f.publish(401, 420)
	eventually(t, "the new holder applied ids 401-420", func() bool { return has(b, 401, 420) })
}
