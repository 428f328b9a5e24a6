package sinkrunner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestPartitionedRunnersShareByPin: two runners on the 4 partitions'
// consumers of one pipeline destination, as two sink instances: the first
// to pull holds every partition and applies everything, the second stands
// by with nothing; stopped, the first releases its pins and the second
// takes every partition at its next pull, well within the pinned TTL.
func TestPartitionedRunnersShareByPin(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	nextSource.Lock()
	nextSource.n++
	src := nextSource.n
	nextSource.Unlock()
	const parts = 4
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsurePipelineConsumers(ctx, js, src, 1, 1, []natsx.Table{{Schema: "public", Name: "t"}}, parts); err != nil {
		t.Fatal(err)
	}

	start := func() *instance {
		// Handles of its own, as another process has.
		cons, err := natsx.PipelineConsumers(ctx, js, src, 1, 1, parts)
		if err != nil {
			t.Fatal(err)
		}
		in := &instance{drv: &recordingDriver{rows: map[string]cdc.Value{}}, done: make(chan error, 1)}
		cfg := sinkrunner.Config{SourceID: src, PipelineID: 1, DestinationID: 1, BatchSize: 100, BatchWait: 20 * time.Millisecond,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, ReportEvery: 10 * time.Millisecond,
			Unpin: natsx.Unpinner(js)}
		r := sinkrunner.NewPartitioned(cfg, cons, in.drv, &recordingReporter{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		rctx, cancel := context.WithCancel(ctx)
		in.cancel = cancel
		go func() { in.done <- r.Run(rctx) }()
		t.Cleanup(func() { in.stop(t) })
		return in
	}
	used := map[int]bool{}
	publish := func(from, to int) {
		for id := from; id <= to; id++ {
			key := contracts.Row{"id": json.RawMessage(strconv.Itoa(id))}
			part := contracts.Partition(key, parts)
			used[part] = true
			c := contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpCreate,
				Source:  contracts.Source{SourceID: src, Schema: "public", Table: "t", CommitLSN: "0/10", Seq: int64(id)},
				Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
				Key:     key, After: contracts.Row{"id": key["id"], "name": json.RawMessage(`"v"`)}}
			body, _ := json.Marshal(c)
			if _, err := js.Publish(ctx, contracts.ChangeSubject(src, "public", "t", part), body); err != nil {
				t.Fatal(err)
			}
		}
	}
	has := func(in *instance, from, to int) bool {
		rows, _ := in.drv.snapshot()
		for id := from; id <= to; id++ {
			if _, ok := rows[strconv.Itoa(id)]; !ok {
				return false
			}
		}
		return true
	}

	a := start()
	publish(1, 40)
	eventually(t, "the first instance applied ids 1-40", func() bool { return has(a, 1, 40) })
	b := start()
	publish(41, 80)
	eventually(t, "the first instance applied ids 41-80", func() bool { return has(a, 41, 80) })
	time.Sleep(300 * time.Millisecond) // several of the standby's pulls
	if rows, calls := b.drv.snapshot(); len(rows) > 0 || calls > 0 {
		t.Fatalf("the standby applied %d rows in %d calls while the first held the partitions", len(rows), calls)
	}
	if len(used) != parts {
		t.Fatalf("the changes used partitions %v; want all %d", used, parts)
	}

	a.stop(t)
	began := time.Now()
	publish(81, 120)
	for !has(b, 81, 120) {
		if time.Since(began) > natsx.ConsumerPinnedTTL/2 {
			rows, _ := b.drv.snapshot()
			t.Fatalf("after the first stopped, the standby had %d of ids 81-120 after %s: the pins were not released", len(rows), time.Since(began))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the standby took every partition %s after the first stopped", time.Since(began).Round(time.Millisecond))
	for p := range parts {
		name := contracts.PartitionConsumerName(1, 1, p, parts)
		eventually(t, fmt.Sprintf("%s acked everything", name), func() bool {
			c, err := js.Consumer(ctx, contracts.StreamName(src), name)
			if err != nil {
				return false
			}
			ci := c.CachedInfo()
			return ci.NumPending == 0 && ci.NumAckPending == 0
		})
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
