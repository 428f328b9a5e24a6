package sinkrunner_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// v2Change is change seq of the transaction committed at commitLSN, of
// row id of public.t (a create or update names it; a delete has no after).
func (f *fixture) v2Change(commitLSN uint64, seq int64, op contracts.Op, id int, name string) contracts.Change {
	c := contracts.Change{
		V:  contracts.MessageVersion,
		Op: op,
		Source: contracts.Source{SourceID: f.sourceID, Database: "shop", Schema: "public", Table: "t",
			CommitLSN: contracts.FormatLSN(commitLSN), LSN: contracts.FormatLSN(commitLSN - 8 + uint64(seq)), Seq: seq, TxID: 7,
			CommitTime: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)},
		Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
		Key:     contracts.Row{"id": json.RawMessage(fmt.Sprint(id))},
	}
	if op != contracts.OpDelete {
		c.After = contracts.Row{"id": json.RawMessage(fmt.Sprint(id)), "name": json.RawMessage(fmt.Sprintf("%q", name))}
	}
	return c
}

// publishMessage publishes changes as one version 2 message.
func (f *fixture) publishMessage(t *testing.T, changes []contracts.Change) {
	t.Helper()
	body, err := contracts.MessageOf(changes).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, body)
}

// publishV1 publishes c alone in the version 1 envelope, as capture did
// before version 2.
func (f *fixture) publishV1(t *testing.T, c contracts.Change) {
	t.Helper()
	c.V = contracts.EnvelopeVersion
	body, err := c.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, body)
}

func (f *fixture) acked(t *testing.T, seq uint64) func() bool {
	return func() bool {
		info := f.info(t)
		return info.AckFloor.Stream == seq && info.NumAckPending == 0
	}
}

// TestRunnerMessages covers messages of several changes (version 2): the
// runner settles each change, and acks a message once all of its are.
func TestRunnerMessages(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)

	t.Run("a rejected change of a message is dead-lettered alone and the rest applied", func(t *testing.T) {
		t.Parallel()
		dl := newMemDLQ()
		f := newFixtureWith(t, n, dl)
		f.drv.rejected = "bad"
		var changes []contracts.Change
		for i := 1; i <= 5; i++ {
			name := fmt.Sprintf("v%d", i)
			if i == 3 {
				name = "bad"
			}
			changes = append(changes, f.v2Change(0x100, int64(i), contracts.OpCreate, i, name))
		}
		f.publishMessage(t, changes)
		f.run(t)
		eventually(t, "the message acked", f.acked(t, 1))
		rows, _ := f.drv.snapshot()
		if len(rows) != 4 || rows["3"] != "" || rows["1"] != "v1" || rows["5"] != "v5" {
			t.Fatalf("rows = %v, want 1, 2, 4, 5", rows)
		}
		letters, _ := dl.snapshot()
		if len(letters) != 1 {
			t.Fatalf("letters = %+v, want change 3 alone", letters)
		}
		l := letters[0]
		if l.Change == nil || string(l.Change.Key["id"]) != "3" || l.Class != sinkrunner.ClassConstraint ||
			!strings.Contains(l.Err.Error(), "check constraint") || l.MsgID != contracts.MsgID(f.sourceID, "0/100", 3) ||
			l.Table != "public.t" || l.StreamSeq != 1 {
			t.Fatalf("letter = %+v", l)
		}
		one, err := cdc.Decode(l.Body)
		if err != nil || one.Source.Seq != 3 || string(one.Key["id"]) != "3" || one.Source.LSN != changes[2].Source.LSN {
			t.Fatalf("letter body %s: %+v, %v; want change 3 alone", l.Body, one, err)
		}
		if m, err := contracts.DecodeMessage(l.Body); err != nil || m.V != contracts.MessageVersion || len(m.Changes) != 1 {
			t.Fatalf("letter body is not a version 2 message of one change: %s", l.Body)
		}
		if st := f.runner.Stats(); st.Applied != 4 || st.DeadLettered != 1 {
			t.Errorf("stats = %+v, want 4 applied, 1 dead-lettered", st)
		}
		// Past the 1s ack wait: the message was acked for good.
		time.Sleep(1500 * time.Millisecond)
		if info := f.info(t); info.NumRedelivered != 0 || info.NumAckPending != 0 || info.Delivered.Stream != 1 {
			t.Fatalf("%d redelivered, %d pending; want the message acked once, never redelivered", info.NumRedelivered, info.NumAckPending)
		}
	})

	t.Run("a change failing the checks is dead-lettered alone and the rest applied", func(t *testing.T) {
		t.Parallel()
		dl := newMemDLQ()
		f := newFixtureWith(t, n, dl)
		changes := []contracts.Change{
			f.v2Change(0x100, 1, contracts.OpCreate, 1, "a"),
			f.v2Change(0x100, 2, contracts.OpCreate, 2, "b"),
			f.v2Change(0x100, 3, contracts.OpCreate, 3, "c"),
		}
		changes[1].Key = nil
		f.publishMessage(t, changes)
		f.run(t)
		eventually(t, "the message acked", f.acked(t, 1))
		if rows, _ := f.drv.snapshot(); len(rows) != 2 || rows["1"] != "a" || rows["3"] != "c" {
			t.Fatalf("rows = %v, want 1 and 3", rows)
		}
		letters, _ := dl.snapshot()
		if len(letters) != 1 {
			t.Fatalf("letters = %+v", letters)
		}
		l := letters[0]
		if l.Change != nil || l.Class != sinkrunner.ClassUndecodable || !strings.Contains(l.Err.Error(), "without key") ||
			!strings.HasPrefix(l.MsgID, "undecodable:") || !strings.HasSuffix(l.MsgID, ":1") || l.Table != "public.t" {
			t.Fatalf("letter = %+v", l)
		}
		if m, err := contracts.DecodeMessage(l.Body); err != nil || len(m.Changes) != 1 || m.Changes[0].Seq != 2 {
			t.Fatalf("letter body %s: want change 2 alone", l.Body)
		}
		if st := f.runner.Stats(); st.Applied != 2 || st.DeadLettered != 1 {
			t.Errorf("stats = %+v", st)
		}
	})

	t.Run("without a dead-letter queue an invalid change is dropped and the rest applied", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, n)
		changes := []contracts.Change{
			f.v2Change(0x100, 1, contracts.OpCreate, 1, "a"),
			f.v2Change(0x100, 2, contracts.OpCreate, 2, "b"),
		}
		changes[0].After = nil
		f.publishMessage(t, changes)
		f.run(t)
		eventually(t, "the message acked", f.acked(t, 1))
		if rows, _ := f.drv.snapshot(); len(rows) != 1 || rows["2"] != "b" {
			t.Fatalf("rows = %v, want 2", rows)
		}
		if st := f.runner.Stats(); st.Applied != 1 || st.Terminated != 1 {
			t.Errorf("stats = %+v", st)
		}
	})

	t.Run("a message whose changes span two applies is acked after both", func(t *testing.T) {
		t.Parallel()
		dl := newMemDLQ()
		f := newFixtureWith(t, n, dl)
		f.drv.rejected = "bad"
		gate := make(chan struct{})
		f.drv.gate = gate
		step := func(what string) {
			t.Helper()
			select {
			case gate <- struct{}{}:
			case <-time.After(15 * time.Second):
				t.Fatalf("timed out waiting for the Apply of %s", what)
			}
		}
		f.publishMessage(t, []contracts.Change{
			f.v2Change(0x100, 1, contracts.OpCreate, 1, "a"),
			f.v2Change(0x100, 2, contracts.OpCreate, 2, "b"),
			f.v2Change(0x100, 3, contracts.OpCreate, 3, "c"),
			f.v2Change(0x100, 4, contracts.OpCreate, 4, "bad"),
		})
		f.run(t)
		step("the whole batch") // fails: bisect
		step("the first half")  // commits 1 and 2
		eventually(t, "the second half's Apply", func() bool { _, calls := f.drv.snapshot(); return calls == 3 })
		time.Sleep(200 * time.Millisecond)
		if rows, _ := f.drv.snapshot(); len(rows) != 2 {
			t.Fatalf("rows = %v, want the first half", rows)
		}
		if info := f.info(t); info.AckFloor.Stream != 0 || info.NumAckPending != 1 {
			t.Fatalf("after the first half: ack floor %d, %d pending; want the message unacked", info.AckFloor.Stream, info.NumAckPending)
		}
		step("the second half") // fails: bisect
		step("change 3")        // commits
		step("change 4")        // fails alone: dead-lettered
		eventually(t, "the message acked", f.acked(t, 1))
		if rows, _ := f.drv.snapshot(); len(rows) != 3 || rows["3"] != "c" {
			t.Fatalf("rows = %v, want 1, 2, 3", rows)
		}
		if letters, _ := dl.snapshot(); letterIDs(t, letters) != "4" {
			t.Fatalf("letters = %s, want 4", letterIDs(t, letters))
		}
	})

	t.Run("version 1 messages then version 2 messages of the same keys", func(t *testing.T) {
		t.Parallel()
		f := newFixtureConfig(t, n, nil, func(c *sinkrunner.Config) { c.BatchSize = 4 })
		f.drv.history = map[string][]string{}
		want := map[string]string{}
		lsn := uint64(0x1000)
		// Retained from before the upgrade: one change per message.
		for i := 1; i <= 6; i++ {
			lsn += 0x10
			name := fmt.Sprintf("v1-%d", i)
			f.publishV1(t, f.v2Change(lsn, 1, contracts.OpCreate, i, name))
			want[fmt.Sprint(i)] = name
		}
		// After: each transaction a message of several changes.
		for tx := 1; tx <= 5; tx++ {
			lsn += 0x10
			var changes []contracts.Change
			for i := 1; i <= 6; i++ {
				seq := int64(len(changes) + 1)
				switch {
				case i == tx:
					changes = append(changes, f.v2Change(lsn, seq, contracts.OpDelete, i, ""))
					delete(want, fmt.Sprint(i))
				case (i+tx)%2 == 0:
					name := fmt.Sprintf("v2-%d-%d", tx, i)
					changes = append(changes, f.v2Change(lsn, seq, contracts.OpUpdate, i, name))
					want[fmt.Sprint(i)] = name
				}
			}
			f.publishMessage(t, changes)
			if tx == 3 {
				// A v1 message between v2 ones, as a stream mid-upgrade
				// holds when two captures overlap.
				lsn += 0x10
				f.publishV1(t, f.v2Change(lsn, 1, contracts.OpCreate, 1, "v1-late"))
				want["1"] = "v1-late"
			}
		}
		f.run(t)
		eventually(t, "every message acked", f.acked(t, 12))
		rows, _ := f.drv.snapshot()
		if !maps.Equal(rows, want) {
			t.Fatalf("destination %v, want the source's final state %v", rows, want)
		}
	})
}

// TestRunnerBatchSizeInChanges: BatchSize counts changes; a batch takes
// whole messages and passes it by less than one message's changes, also
// when a pull sized for small messages delivers large ones.
func TestRunnerBatchSizeInChanges(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)
	const perMessage, size = 1000, 2000
	publish := func(t *testing.T, f *fixture, from, count int) {
		for m := range count {
			changes := make([]contracts.Change, perMessage)
			for k := range changes {
				changes[k] = f.v2Change(uint64(0x10000+(from+m)*0x10), int64(k+1), contracts.OpCreate, (from+m)*perMessage+k, "v")
			}
			f.publishMessage(t, changes)
		}
	}
	check := func(t *testing.T, f *fixture, total int) {
		f.drv.mu.Lock()
		applied := slices.Clone(f.drv.applied)
		f.drv.mu.Unlock()
		t.Logf("rows per Apply %v", applied)
		sum := 0
		for _, n := range applied {
			sum += n
			if n > size+perMessage-1 {
				t.Errorf("an Apply of %d changes; want at most %d (rows per Apply %v)", n, size+perMessage-1, applied)
			}
		}
		if sum != total {
			t.Errorf("%d rows applied, want %d (rows per Apply %v)", sum, total, applied)
		}
	}
	tune := func(c *sinkrunner.Config) { c.BatchSize = size; c.BatchWait = 20 * time.Millisecond }

	t.Run("a backlog of large messages", func(t *testing.T) {
		t.Parallel()
		f := newFixtureConfig(t, n, nil, tune)
		publish(t, f, 0, 7)
		f.run(t)
		eventually(t, "every message acked", f.acked(t, 7))
		check(t, f, 7*perMessage)
	})

	t.Run("large messages after small ones", func(t *testing.T) {
		t.Parallel()
		f := newFixtureConfig(t, n, nil, tune)
		gate := make(chan struct{})
		f.drv.gate = gate
		for i := 1; i <= 3; i++ {
			f.publishChange(t, int64(i), contracts.OpCreate, -i, "small")
		}
		f.run(t)
		// The first batch applies (held) while the fetcher, having seen
		// one change per message, pulls for the room left: the large
		// messages arrive in that pull.
		eventually(t, "the first batch applying", func() bool { _, calls := f.drv.snapshot(); return calls == 1 })
		publish(t, f, 0, 6)
		eventually(t, "the large messages held", func() bool { return f.info(t).NumAckPending >= 6 })
		close(gate)
		eventually(t, "every message acked", f.acked(t, 9))
		check(t, f, 3+6*perMessage)
	})
}
