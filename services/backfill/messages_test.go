package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestSnapshotMessages: a snapshot publishes version 2 messages, each of
// the rows of one read batch on one partition, cut at
// contracts.ChunkChanges rows: per batch and partition, ceil(rows/1024)
// messages, every row exactly once, on its key's partition, in key order
// within a message, named by source, job, partition and key set.
func TestSnapshotMessages(t *testing.T) {
	t.Parallel()
	const rows, batch, parts = 6000, 5000, 4
	pg := testkit.StartPostgres(t)
	f := newFixtureParts(t, pg, rows, parts, parts)
	j, err := f.store.CreateBackfillJob(context.Background(), configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items", BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	f.start(testConfig())
	f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })

	// Rows per (batch, partition); the batches are ids 1..5000 and 5001..6000.
	perPart := map[[2]int]int{}
	for id := 1; id <= rows; id++ {
		perPart[[2]int{(id - 1) / batch, contracts.Partition(contracts.Row{"id": json.RawMessage(strconv.Itoa(id))}, parts)}]++
	}
	want := 0
	for _, n := range perPart {
		want += (n + contracts.ChunkChanges - 1) / contracts.ChunkChanges
	}
	msgs := f.stream()
	if len(msgs) != want {
		t.Errorf("%d messages; want %d (ceil(rows/%d) per batch and partition: %v)", len(msgs), want, contracts.ChunkChanges, perPart)
	}
	seen := map[int]bool{}
	for i, m := range msgs {
		if !bytes.HasPrefix(m.data, []byte(`{"v":2,`)) {
			t.Fatalf("message %d is not version 2: %.60s", i, m.data)
		}
		var ids []int
		for _, c := range m.changes {
			id, err := strconv.Atoi(string(c.Key["id"]))
			if err != nil || seen[id] {
				t.Fatalf("message %d: row %s (%v), or published twice", i, c.Key["id"], err)
			}
			seen[id] = true
			if c.Op != contracts.OpRead || !c.Source.Snapshot || c.Source.Seq != 0 || c.Source.LSN != c.Source.CommitLSN {
				t.Fatalf("message %d: row %d: op %s source %+v", i, id, c.Op, c.Source)
			}
			if sub := contracts.ChangeSubject(f.src.ID, "public", "items", contracts.Partition(c.Key, parts)); sub != m.subject {
				t.Fatalf("message %d on %s holds row %d of %s", i, m.subject, id, sub)
			}
			if len(ids) > 0 && (id < ids[len(ids)-1] || (id-1)/batch != (ids[0]-1)/batch) {
				t.Fatalf("message %d: row %d after %v (out of order, or of another batch)", i, id, ids)
			}
			ids = append(ids, id)
		}
		part := m.subject[strings.LastIndexByte(m.subject, '.')+1:]
		prefix := fmt.Sprintf(`%d:snap:%d:%s:["%d"]:%d:`, f.src.ID, j.ID, part, ids[0], len(ids))
		if id := m.header.Get("Nats-Msg-Id"); !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+16 {
			t.Errorf("message %d: Nats-Msg-Id %q, want %q and 16 hex digits", i, id, prefix)
		}
	}
	if len(seen) != rows {
		t.Errorf("%d rows published, want %d", len(seen), rows)
	}
}

// crashingStore fails one checkpoint of a batch, as if the worker died
// after JetStream acknowledged the batch and before its checkpoint was
// stored.
type crashingStore struct {
	*configstore.Store
	failAt int32 // which checkpoint of a last key fails (1: the first)
	n      atomic.Int32
}

func (s *crashingStore) CheckpointBackfillJob(ctx context.Context, id int64, owner string, lease time.Duration, cp configstore.Checkpoint) error {
	if cp.LastKey != nil && s.n.Add(1) == s.failAt {
		return errors.New("simulated crash before the checkpoint")
	}
	return s.Store.CheckpointBackfillJob(ctx, id, owner, lease, cp)
}

// TestResumeRepublishesSameMessages: a job whose worker "crashes" after
// a batch was published but before its checkpoint resumes from the
// previous checkpoint, re-reads that batch at a new consistent point and
// re-publishes the same messages with the same Nats-Msg-Ids; JetStream
// drops them, so the stream holds each message, and each row, once.
func TestResumeRepublishesSameMessages(t *testing.T) {
	t.Parallel()
	const rows, batch = 5000, 1000
	pg := testkit.StartPostgres(t)
	f := newFixtureParts(t, pg, rows, 2, 2)
	// Every publish, duplicates included, seen on the subjects.
	var mu sync.Mutex
	sent := map[string]int{}
	sub, err := f.nc.Subscribe(contracts.SourceFilter(f.src.ID), func(m *nats.Msg) {
		mu.Lock()
		sent[m.Header.Get("Nats-Msg-Id")]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	j, err := f.store.CreateBackfillJob(context.Background(), configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items", BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	store := &crashingStore{Store: f.store, failAt: 3} // batches 1 and 2 checkpointed, batch 3 published twice
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = New(cfg, store, f.nc, quietLog()).Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	j = f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
	stop()
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if j.Attempts != 2 || j.RowsCopied != rows {
		t.Fatalf("attempts %d rows_copied %d; want 2 and %d", j.Attempts, j.RowsCopied, rows)
	}
	if got, want := f.ids(f.published()), f.sourceIDs("true"); !equalIDs(got, want) {
		t.Fatalf("stream holds %d rows, want %d", len(got), len(want))
	}
	msgs := f.stream()
	mu.Lock()
	defer mu.Unlock()
	again := 0
	inStream := map[string]bool{}
	for _, m := range msgs {
		id := m.header.Get("Nats-Msg-Id")
		if inStream[id] {
			t.Fatalf("stream holds %s twice", id)
		}
		inStream[id] = true
		switch sent[id] {
		case 1:
		case 2:
			again += len(m.changes)
		default:
			t.Errorf("message %s published %d times", id, sent[id])
		}
	}
	for id := range sent {
		if !inStream[id] {
			t.Errorf("published %s, which the stream does not hold", id)
		}
	}
	if again != batch {
		t.Errorf("%d rows re-published under the same ids; want the re-read batch's %d", again, batch)
	}
}
