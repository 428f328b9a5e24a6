package faults

import (
	"context"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// (p) a source with 4 partitions and two sink instances: the first holds
// every partition (JetStream's pinned client) until the second starts and
// takes half of them (the first gives two up, sinkrunner balance.go). The
// first is SIGKILLed under load (keys move between partitions: the
// workload changes primary keys), the second takes its partitions within
// the pinned TTL; restarted, the first gets half back, and the second,
// stopped with SIGTERM, hands its partitions over at once (it releases its
// pins). The destination must equal the source.
func testPartitionsSinkTakeover(t *testing.T) {
	w, wl := setup(t, worldOptions{partitions: 4}, false, 17)
	pins := w.waitPinned(nil, 30*time.Second)
	t.Logf("sink 1 holds the 4 partitions: %v", pins)
	sink2 := newProc(t, "sink2", w.sink.env, bins.rosetta, "sink")
	sink2.start()
	start := time.Now()
	spread, kept := w.waitSpread(pins, 2, 30*time.Second)
	t.Logf("sink 2 took two partitions from sink 1 in %s: sink 1 kept %v: %v", time.Since(start).Round(10*time.Millisecond), kept, spread)

	start = time.Now()
	w.sink.kill()
	pins2 := w.waitPinned(spread, 60*time.Second, kept...)
	killed := time.Since(start)
	t.Logf("after SIGKILL of sink 1, sink 2 held its partitions %v in %s: %v", kept, killed.Round(10*time.Millisecond), pins2)
	if killed > natsx.ConsumerPinnedTTL+5*time.Second {
		t.Errorf("takeover after SIGKILL took %s; want about the pinned TTL (%s)", killed, natsx.ConsumerPinnedTTL)
	}

	w.sink.start()
	spread2, kept2 := w.waitSpread(pins2, 2, 60*time.Second)
	t.Logf("restarted, sink 1 got two partitions back; sink 2 kept %v: %v", kept2, spread2)
	start = time.Now()
	sink2.stop(syscall.SIGTERM, 30*time.Second)
	stopped := time.Since(start)
	pins3 := w.waitPinned(spread2, 60*time.Second, kept2...)
	handed := time.Since(start)
	t.Logf("after SIGTERM of sink 2 (%s to exit), sink 1 held its partitions %v %s after the signal: %v",
		stopped.Round(10*time.Millisecond), kept2, handed.Round(10*time.Millisecond), pins3)
	if handed-stopped > 3*time.Second {
		t.Errorf("takeover after SIGTERM took %s after the exit; want it at the next pull (the pins are released)", handed-stopped)
	}
	time.Sleep(2 * time.Second)
	finish(t, w, wl, 120*time.Second)
	w.logConsumers()
	w.assertEachChangeOnePartition()

	// The workload moves accounts to id + 1e12: count the moves whose old
	// and new keys are on different partitions, which the comparison
	// above covered.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.srcPG.DSN(w.sourceDB))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM accounts WHERE id >= 1000000000000`)
	if err != nil {
		t.Fatal(err)
	}
	moved, across := 0, 0
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		moved++
		if contracts.Partition(idKey(id), 4) != contracts.Partition(idKey(id-1000000000000), 4) {
			across++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d accounts moved to a new key, %d of them to another partition", moved, across)
	if across == 0 {
		t.Errorf("no key change crossed partitions (%d moves): the test covered none", moved)
	}
}

func idKey(id int64) contracts.Row { return contracts.Row{"id": []byte(strconv.FormatInt(id, 10))} }

// pins returns the pinned client id of each partition's consumer ("" when
// none is pinned).
func (w *world) pins() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := natsx.PipelineConsumers(ctx, w.js, w.sourceID, w.pipelineID, w.destID, w.partitions)
	if err != nil {
		w.t.Fatalf("pipeline consumers: %v", err)
	}
	out := make([]string, len(cons))
	for i, c := range cons {
		ci, err := c.Info(ctx)
		if err != nil {
			w.t.Fatalf("consumer info: %v", err)
		}
		for _, g := range ci.PriorityGroups {
			if g.Group == natsx.SinkGroup {
				out[i] = g.PinnedClientID
			}
		}
	}
	return out
}

// waitPinned waits until the partitions of which (every partition when
// none is given) are pinned to a client other than the one they had in
// before (any client when before is nil), and returns the pins.
func (w *world) waitPinned(before []string, timeout time.Duration, which ...int) []string {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		now := w.pins()
		done := true
		for i, p := range now {
			if len(which) > 0 && !slices.Contains(which, i) {
				continue
			}
			if p == "" || before != nil && p == before[i] {
				done = false
			}
		}
		if done {
			return now
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("partitions %v not all pinned anew within %s: before %v, now %v", which, timeout, before, now)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSpread waits until exactly keep partitions are still pinned as in
// before and every other one to another client, unchanged for 2 s (the
// instances have settled their shares), and returns the pins and the
// partitions that kept theirs.
func (w *world) waitSpread(before []string, keep int, timeout time.Duration) ([]string, []int) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []string
	var since time.Time
	for {
		now := w.pins()
		var kept []int
		settled := true
		for i, p := range now {
			switch {
			case p == "":
				settled = false
			case p == before[i]:
				kept = append(kept, i)
			}
		}
		if settled && len(kept) == keep {
			if !slices.Equal(now, last) {
				last, since = now, time.Now()
			} else if time.Since(since) >= 2*time.Second {
				return now, kept
			}
		} else {
			last = nil
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("partitions not spread (%d keeping their pins) within %s: before %v, now %v", keep, timeout, before, now)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertEachChangeOnePartition checks that the partitions' consumers split
// the stream: their deliveries add up to the stream's messages plus the
// redeliveries of the kill and the stop (a few thousand), not to a multiple
// of it, as when every consumer delivered every partition.
func (w *world) assertEachChangeOnePartition() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := natsx.PipelineConsumers(ctx, w.js, w.sourceID, w.pipelineID, w.destID, w.partitions)
	if err != nil {
		w.t.Fatal(err)
	}
	var delivered, last uint64
	for _, c := range cons {
		ci, err := c.Info(ctx)
		if err != nil {
			w.t.Fatal(err)
		}
		delivered += ci.Delivered.Consumer
		last = max(last, ci.Delivered.Stream)
	}
	w.t.Logf("the %d partitions' consumers delivered %d times for %d stream messages", len(cons), delivered, last)
	if delivered > last*3/2 {
		w.t.Errorf("the partitions' consumers delivered %d times for %d stream messages: changes went to several partitions", delivered, last)
	}
}
