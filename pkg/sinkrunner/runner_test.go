package sinkrunner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
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

// recordingDriver is a destination that keeps applied rows in memory and
// fails while failing is set. It stands in for a destination, not for
// NATS: the runner talks to a real JetStream.
type recordingDriver struct {
	mu      sync.Mutex
	failing error
	// rejected, when set, fails the whole Apply permanently if any row
	// has this name, the way a destination constraint would.
	rejected string
	// failNext fails the next Apply only.
	failNext error
	// gate, when set, holds every Apply until it can receive from it.
	gate    chan struct{}
	calls   int
	rows    map[string]cdc.Value // key -> name, last applied
	applied []int                // rows per successful Apply
	history map[string][]string  // key -> names, in the order committed
}

func (d *recordingDriver) Apply(ctx context.Context, batches []cdc.TableBatch) error {
	d.mu.Lock()
	gate := d.gate
	d.calls++
	d.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing != nil {
		return d.failing
	}
	if err := d.failNext; err != nil {
		d.failNext = nil
		return err
	}
	for _, b := range batches {
		for _, r := range b.Rows {
			if d.rejected != "" && !r.Delete && r.Values["name"].Text == d.rejected {
				return sinkrunner.Permanent(sqlStateError{code: "23514", msg: "new row violates check constraint"})
			}
		}
	}
	n := 0
	for _, b := range batches {
		for _, r := range b.Rows {
			n++
			if r.Delete {
				delete(d.rows, r.Key[0].Text)
				continue
			}
			d.rows[r.Key[0].Text] = r.Values["name"]
			if d.history != nil {
				d.history[r.Key[0].Text] = append(d.history[r.Key[0].Text], r.Values["name"].Text)
			}
		}
	}
	d.applied = append(d.applied, n)
	return nil
}

func (d *recordingDriver) Close() error { return nil }

func (d *recordingDriver) setFailing(err error) {
	d.mu.Lock()
	d.failing = err
	d.mu.Unlock()
}

func (d *recordingDriver) snapshot() (map[string]string, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for k, v := range d.rows {
		out[k] = v.Text
	}
	return out, d.calls
}

type recordingReporter struct {
	mu     sync.Mutex
	states []sinkrunner.State
}

func (r *recordingReporter) ReportState(_ context.Context, st sinkrunner.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, st)
	return nil
}

func (r *recordingReporter) last() sinkrunner.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return sinkrunner.State{}
	}
	return r.states[len(r.states)-1]
}

func (r *recordingReporter) seen(h sinkrunner.Health, text string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.states {
		if st.Health == h && strings.Contains(st.LastError, text) {
			return true
		}
	}
	return false
}

type fixture struct {
	js       jetstream.JetStream
	cons     jetstream.Consumer
	sourceID int64
	drv      *recordingDriver
	rep      *recordingReporter
	runner   *sinkrunner.Runner
}

var nextSource struct {
	sync.Mutex
	n int64
}

// newFixture provisions a stream and consumer with a short ack wait (so a
// missing keep-alive would show as redeliveries) and a runner on them.
func newFixture(t *testing.T, n *testkit.NATS) *fixture {
	t.Helper()
	return newFixtureWith(t, n, nil)
}

// newFixtureWith is newFixture with a dead-letter queue (nil: none).
func newFixtureWith(t *testing.T, n *testkit.NATS, dl sinkrunner.DeadLetterQueue) *fixture {
	t.Helper()
	return newFixtureConfig(t, n, dl, nil)
}

// newFixtureConfig is newFixtureWith with the runner's config changed by
// tune (nil: the defaults of newFixture).
func newFixtureConfig(t *testing.T, n *testkit.NATS, dl sinkrunner.DeadLetterQueue, tune func(*sinkrunner.Config)) *fixture {
	t.Helper()
	_, js := n.Connect(t)
	ctx := context.Background()
	nextSource.Lock()
	nextSource.n++
	src := nextSource.n
	nextSource.Unlock()
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	cfg := natsx.PipelineConsumerConfig(src, 1, 1, []natsx.Table{{Schema: "public", Name: "t"}}, 0, 1)
	cfg.AckWait = time.Second
	cons, err := js.CreateOrUpdateConsumer(ctx, contracts.StreamName(src), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js, cons: cons, sourceID: src, drv: &recordingDriver{rows: map[string]cdc.Value{}}, rep: &recordingReporter{}}
	rcfg := sinkrunner.Config{
		SourceID:       src,
		PipelineID:     1,
		DestinationID:  1,
		BatchSize:      100,
		BatchWait:      50 * time.Millisecond,
		MinBackoff:     50 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		KeepAliveEvery: 200 * time.Millisecond,
		ReportEvery:    10 * time.Millisecond,
		Unpin:          natsx.Unpinner(js),
	}
	if tune != nil {
		tune(&rcfg)
	}
	f.runner = sinkrunner.NewWithDeadLetters(rcfg, cons, f.drv, f.rep, dl, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return f
}

func (f *fixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func (f *fixture) publish(t *testing.T, body []byte) {
	t.Helper()
	if _, err := f.js.Publish(context.Background(), contracts.ChangeSubject(f.sourceID, "public", "t", 0), body); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) publishChange(t *testing.T, seq int64, op contracts.Op, id int, name string) {
	t.Helper()
	c := contracts.Change{
		V:       contracts.EnvelopeVersion,
		Op:      op,
		Source:  contracts.Source{SourceID: f.sourceID, Schema: "public", Table: "t", CommitLSN: "0/10", Seq: seq},
		Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
		Key:     contracts.Row{"id": json.RawMessage(fmt.Sprint(id))},
	}
	if op != contracts.OpDelete {
		c.After = contracts.Row{"id": json.RawMessage(fmt.Sprint(id)), "name": json.RawMessage(fmt.Sprintf("%q", name))}
	}
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, body)
}

func (f *fixture) info(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := f.cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// pull fetches what the consumer delivers to a second puller within wait
// (up to 10 messages), acks or naks each, and returns how many came.
func (f *fixture) pull(t *testing.T, wait time.Duration, ack bool) int {
	t.Helper()
	// A handle of its own, as another sink instance has: the runner's
	// handle carries the runner's pin.
	second, err := f.js.Consumer(context.Background(), contracts.StreamName(f.sourceID), f.cons.CachedInfo().Name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := second.Fetch(10, jetstream.FetchMaxWait(wait), jetstream.FetchPriorityGroup(natsx.SinkGroup))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range b.Messages() {
		n++
		if ack {
			_ = m.Ack()
		} else {
			_ = m.Nak()
		}
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunner(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)

	t.Run("applies, acks and terminates undecodable messages", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, n)
		f.publishChange(t, 1, contracts.OpCreate, 1, "a")
		f.publishChange(t, 2, contracts.OpCreate, 2, "b")
		f.publish(t, []byte(`{not json`))
		f.publishChange(t, 3, contracts.OpUpdate, 1, "a2")
		f.publishChange(t, 4, contracts.OpDelete, 2, "")
		f.run(t)
		eventually(t, "all messages acked", func() bool {
			info := f.info(t)
			return info.AckFloor.Stream == 5 && info.NumAckPending == 0
		})
		rows, _ := f.drv.snapshot()
		if len(rows) != 1 || rows["1"] != "a2" {
			t.Errorf("rows = %v, want only 1=a2", rows)
		}
		st := f.runner.Stats()
		if st.Applied != 4 || st.Terminated != 1 {
			t.Errorf("stats = %+v, want 4 applied and 1 terminated", st)
		}
		eventually(t, "healthy report", func() bool {
			last := f.rep.last()
			return last.Health == sinkrunner.HealthHealthy && !last.LastAppliedAt.IsZero() &&
				strings.Contains(last.LastError, "1 undecodable")
		})
		if last := f.rep.last(); last.PipelineID != 1 || last.DestinationID != 1 {
			t.Errorf("reported state for %d/%d, want 1/1", last.PipelineID, last.DestinationID)
		}
	})

	t.Run("acks nothing while apply fails and keeps the batch in progress", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, n)
		f.drv.setFailing(errors.New("destination is down"))
		for i := 1; i <= 3; i++ {
			f.publishChange(t, int64(i), contracts.OpCreate, i, "v")
		}
		f.run(t)
		eventually(t, "error reported", func() bool { return f.rep.seen(sinkrunner.HealthError, "destination is down") })
		// Several retries and more than the 1s ack wait pass while failing.
		eventually(t, "retries", func() bool { _, calls := f.drv.snapshot(); return calls >= 4 })
		time.Sleep(1500 * time.Millisecond)
		info := f.info(t)
		if info.AckFloor.Stream != 0 || info.NumAckPending != 3 {
			t.Fatalf("while failing: ack floor %d, ack pending %d; want 0 and 3", info.AckFloor.Stream, info.NumAckPending)
		}
		// A second puller on the same consumer gets whatever JetStream
		// would redeliver; the in-progress marks must hold every message.
		stolen := f.pull(t, 300*time.Millisecond, false)
		if stolen != 0 {
			t.Errorf("while failing: %d messages redelivered past the ack wait; in-progress marks should hold them", stolen)
		}
		if rows, _ := f.drv.snapshot(); len(rows) != 0 {
			t.Fatalf("rows applied while failing: %v", rows)
		}
		f.drv.setFailing(nil)
		eventually(t, "acked after recovery", func() bool {
			info := f.info(t)
			return info.AckFloor.Stream == 3 && info.NumAckPending == 0
		})
		rows, _ := f.drv.snapshot()
		if len(rows) != 3 {
			t.Errorf("rows = %v, want 3", rows)
		}
		eventually(t, "healthy again", func() bool { return f.rep.last().Health == sinkrunner.HealthHealthy })
		if st := f.runner.Stats(); st.Batches != 1 || st.Failures < 3 {
			t.Errorf("stats = %+v, want the one batch applied after >= 3 failures", st)
		}
	})

	t.Run("permanent errors are reported as such", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, n)
		f.drv.setFailing(sinkrunner.Permanent(errors.New("invalid input syntax")))
		f.publishChange(t, 1, contracts.OpCreate, 1, "v")
		f.run(t)
		eventually(t, "permanent error reported", func() bool {
			return f.rep.seen(sinkrunner.HealthError, "permanent: invalid input syntax")
		})
		if info := f.info(t); info.AckFloor.Stream != 0 {
			t.Errorf("ack floor %d, want 0: a failed batch is never acked", info.AckFloor.Stream)
		}
	})
}

// TestRunnerPipelined covers what the fetcher gathering the next batch
// while the applier applies must not change: order per key, the ack wait
// of every held message, and nothing acked on shutdown.
func TestRunnerPipelined(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)
	small := func(c *sinkrunner.Config) { c.BatchSize = 3 }

	t.Run("batches behind a failing one wait in progress and commit in order", func(t *testing.T) {
		t.Parallel()
		f := newFixtureConfig(t, n, nil, small)
		f.drv.history = map[string][]string{}
		f.drv.setFailing(errors.New("destination is down"))
		// Key 1 changes in both batches.
		for i := 1; i <= 6; i++ {
			f.publishChange(t, int64(i), contracts.OpUpdate, 1, fmt.Sprintf("v%02d", i))
		}
		f.run(t)
		// The failing batch and the one gathered behind it are both
		// delivered, held and kept in progress past the 1s ack wait.
		eventually(t, "a batch failing and the next one gathered", func() bool {
			_, calls := f.drv.snapshot()
			return calls >= 3 && f.info(t).NumAckPending == 6
		})
		time.Sleep(1500 * time.Millisecond)
		// A second puller on the consumer gets what JetStream would
		// redeliver; the in-progress marks must hold every message.
		stolen := f.pull(t, 300*time.Millisecond, false)
		info := f.info(t)
		if stolen != 0 || info.NumRedelivered != 0 || info.NumAckPending != 6 || info.AckFloor.Stream != 0 {
			t.Fatalf("while failing: %d stolen, %d redelivered, %d pending, ack floor %d; want 0, 0, 6 (the failing batch and the next), 0",
				stolen, info.NumRedelivered, info.NumAckPending, info.AckFloor.Stream)
		}
		f.drv.setFailing(nil)
		for i := 7; i <= 10; i++ {
			f.publishChange(t, int64(i), contracts.OpUpdate, 1, fmt.Sprintf("v%02d", i))
		}
		f.publishChange(t, 11, contracts.OpCreate, 2, "w")
		eventually(t, "everything acked", func() bool {
			info := f.info(t)
			return info.AckFloor.Stream == 11 && info.NumAckPending == 0
		})
		f.drv.mu.Lock()
		hist := slices.Clone(f.drv.history["1"])
		f.drv.mu.Unlock()
		if len(hist) < 3 || hist[0] != "v03" || hist[1] != "v06" || !slices.IsSorted(hist) || hist[len(hist)-1] != "v10" {
			t.Fatalf("key 1 committed as %v; want v03 (the retried batch), v06 (the one behind it), then in order up to v10", hist)
		}
		if info := f.info(t); info.NumRedelivered != 0 {
			t.Errorf("%d messages redelivered, want none", info.NumRedelivered)
		}
		if rows, _ := f.drv.snapshot(); len(rows) != 2 || rows["1"] != "v10" || rows["2"] != "w" {
			t.Errorf("rows = %v", rows)
		}
	})

	t.Run("changes arriving while a batch applies join the next batch", func(t *testing.T) {
		t.Parallel()
		f := newFixtureConfig(t, n, nil, func(c *sinkrunner.Config) { c.BatchWait = 20 * time.Millisecond })
		gate := make(chan struct{})
		f.drv.gate = gate
		f.run(t)
		f.publishChange(t, 1, contracts.OpCreate, 1, "first")
		eventually(t, "the first batch applying", func() bool { _, calls := f.drv.snapshot(); return calls == 1 })
		for i := 2; i <= 21; i++ {
			f.publishChange(t, int64(i), contracts.OpCreate, i, "later")
		}
		// Many times BatchWait: the later changes wait for the applier,
		// in one batch, rather than going one batch each per wait.
		eventually(t, "the later changes held", func() bool { return f.info(t).NumAckPending == 21 })
		time.Sleep(300 * time.Millisecond)
		close(gate)
		eventually(t, "everything acked", func() bool { return f.info(t).AckFloor.Stream == 21 })
		f.drv.mu.Lock()
		applied := slices.Clone(f.drv.applied)
		f.drv.mu.Unlock()
		if !slices.Equal(applied, []int{1, 20}) {
			t.Errorf("rows per Apply %v, want [1 20]", applied)
		}
	})

	t.Run("a full batch goes without waiting for BatchWait", func(t *testing.T) {
		t.Parallel()
		f := newFixtureConfig(t, n, nil, func(c *sinkrunner.Config) { c.BatchSize = 3; c.BatchWait = time.Hour })
		for i := 1; i <= 4; i++ {
			f.publishChange(t, int64(i), contracts.OpCreate, i, "v")
		}
		f.run(t)
		eventually(t, "the full batch acked", func() bool { return f.info(t).AckFloor.Stream == 3 })
		time.Sleep(200 * time.Millisecond)
		if info := f.info(t); info.AckFloor.Stream != 3 || info.NumAckPending != 1 {
			t.Errorf("ack floor %d, %d pending; want the 4th change waiting for BatchWait", info.AckFloor.Stream, info.NumAckPending)
		}
	})

	t.Run("stopping naks the failing batch and the one gathered behind it", func(t *testing.T) {
		t.Parallel()
		f := newFixtureConfig(t, n, nil, small)
		f.drv.setFailing(errors.New("destination is down"))
		for i := 1; i <= 6; i++ {
			f.publishChange(t, int64(i), contracts.OpCreate, i, "v")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.runner.Run(ctx) }()
		eventually(t, "both batches held", func() bool {
			_, calls := f.drv.snapshot()
			return calls >= 2 && f.info(t).NumAckPending == 6
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Nak'ed: delivered again at once, not after the 1s ack wait.
		got := f.pull(t, 500*time.Millisecond, true)
		if got != 6 {
			t.Errorf("fetched %d right after the stop, want the 6 nak'ed", got)
		}
		if rows, _ := f.drv.snapshot(); len(rows) != 0 {
			t.Errorf("rows = %v, want none", rows)
		}
	})
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	err := fmt.Errorf("apply batch to public.t: %w", sinkrunner.Permanent(base))
	if !sinkrunner.IsPermanent(err) || !errors.Is(err, base) {
		t.Errorf("IsPermanent/Is on wrapped permanent error: false")
	}
	if sinkrunner.IsPermanent(base) || sinkrunner.Permanent(nil) != nil {
		t.Errorf("plain errors must not be permanent; Permanent(nil) must be nil")
	}
}

// sqlStateError stands in for a driver error carrying an SQLSTATE, like
// pgx's *pgconn.PgError.
type sqlStateError struct{ code, msg string }

func (e sqlStateError) Error() string    { return e.msg + " (SQLSTATE " + e.code + ")" }
func (e sqlStateError) SQLState() string { return e.code }

// memDLQ is a dead-letter queue in memory that fails while down is set.
// It deduplicates by MsgID like the real one.
type memDLQ struct {
	mu      sync.Mutex
	down    error
	tries   int
	letters map[string]sinkrunner.DeadLetter
}

func newMemDLQ() *memDLQ { return &memDLQ{letters: map[string]sinkrunner.DeadLetter{}} }

func (q *memDLQ) Add(_ context.Context, l sinkrunner.DeadLetter) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tries++
	if q.down != nil {
		return q.down
	}
	if _, ok := q.letters[l.MsgID]; !ok {
		q.letters[l.MsgID] = l
	}
	return nil
}

func (q *memDLQ) setDown(err error) {
	q.mu.Lock()
	q.down = err
	q.mu.Unlock()
}

func (q *memDLQ) snapshot() ([]sinkrunner.DeadLetter, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []sinkrunner.DeadLetter
	for _, l := range q.letters {
		out = append(out, l)
	}
	return out, q.tries
}

func letterIDs(t *testing.T, ls []sinkrunner.DeadLetter) string {
	t.Helper()
	var ids []string
	for _, l := range ls {
		if l.Change == nil {
			ids = append(ids, "undecodable")
			continue
		}
		ids = append(ids, string(l.Change.Key["id"]))
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

func TestRunnerDeadLetters(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)

	t.Run("bisects a rejected batch, applies the rest and dead-letters only the rejected changes", func(t *testing.T) {
		t.Parallel()
		dl := newMemDLQ()
		f := newFixtureWith(t, n, dl)
		f.drv.rejected = "bad"
		for i := 1; i <= 10; i++ {
			name := fmt.Sprintf("v%d", i)
			if i == 3 || i == 7 {
				name = "bad"
			}
			f.publishChange(t, int64(i), contracts.OpCreate, i, name)
		}
		// Collapse: key 5 is good, then rejected in the same batch; its
		// good version is applied, the rejected one dead-lettered.
		f.publishChange(t, 11, contracts.OpUpdate, 5, "bad")
		f.run(t)
		eventually(t, "every message acked", func() bool {
			info := f.info(t)
			return info.AckFloor.Stream == 11 && info.NumAckPending == 0
		})
		letters, _ := dl.snapshot()
		if got := letterIDs(t, letters); got != "3,5,7" {
			t.Fatalf("dead-lettered ids %s, want 3,5,7", got)
		}
		for _, l := range letters {
			if l.Class != sinkrunner.ClassConstraint || !sinkrunner.IsPermanent(l.Err) || l.Table != "public.t" ||
				l.SourceID != f.sourceID || l.PipelineID != 1 || l.DestinationID != 1 || l.StreamSeq == 0 ||
				l.Stream != contracts.StreamName(f.sourceID) || l.Subject != contracts.ChangeSubject(f.sourceID, "public", "t", 0) ||
				l.MsgID != contracts.MsgID(f.sourceID, "0/10", l.Change.Source.Seq) || len(l.Body) == 0 {
				t.Errorf("letter = %+v", l)
			}
		}
		rows, _ := f.drv.snapshot()
		if len(rows) != 8 || rows["5"] != "v5" || rows["3"] != "" {
			t.Errorf("rows = %v, want the 8 good ones with 5=v5", rows)
		}
		if st := f.runner.Stats(); st.Applied != 8 || st.DeadLettered != 3 {
			t.Errorf("stats = %+v, want 8 applied, 3 dead-lettered", st)
		}
		eventually(t, "healthy report naming the dead letters", func() bool {
			last := f.rep.last()
			return last.Health == sinkrunner.HealthHealthy && strings.Contains(last.LastError, "3 changes the destination rejected")
		})
	})

	t.Run("a dead-letter queue that is down keeps the change unacked until it is stored", func(t *testing.T) {
		t.Parallel()
		dl := newMemDLQ()
		dl.setDown(errors.New("connection refused"))
		f := newFixtureWith(t, n, dl)
		f.drv.rejected = "bad"
		f.publishChange(t, 1, contracts.OpCreate, 1, "good")
		f.publishChange(t, 2, contracts.OpCreate, 2, "bad")
		f.run(t)
		eventually(t, "the good change applied", func() bool { rows, _ := f.drv.snapshot(); return rows["1"] == "good" })
		eventually(t, "the queue's failure reported", func() bool {
			return f.rep.seen(sinkrunner.HealthError, "dead-letter queue (it stays unacked and is retried): connection refused")
		})
		// Longer than the 1s ack wait: the rejected change stays with us.
		eventually(t, "retries", func() bool { _, tries := dl.snapshot(); return tries >= 3 })
		time.Sleep(1500 * time.Millisecond)
		if info := f.info(t); info.NumAckPending != 1 || info.NumRedelivered != 0 {
			t.Fatalf("while the queue is down: %d pending, %d redelivered; want the rejected change pending, never redelivered",
				info.NumAckPending, info.NumRedelivered)
		}
		dl.setDown(nil)
		eventually(t, "acked once stored", func() bool {
			info := f.info(t)
			return info.AckFloor.Stream == 2 && info.NumAckPending == 0
		})
		if letters, _ := dl.snapshot(); letterIDs(t, letters) != "2" {
			t.Fatalf("letters = %v", letterIDs(t, letters))
		}
	})

	t.Run("a change is dead-lettered only when it fails again on its own", func(t *testing.T) {
		t.Parallel()
		dl := newMemDLQ()
		f := newFixtureWith(t, n, dl)
		// A driver whose cached view of the destination was stale fails
		// once; it has refreshed it by the next Apply.
		f.drv.failNext = sinkrunner.Permanent(sqlStateError{code: "22001", msg: "value too long (stale staging table)"})
		f.publishChange(t, 1, contracts.OpCreate, 1, "fits now")
		f.run(t)
		eventually(t, "applied", func() bool { rows, _ := f.drv.snapshot(); return rows["1"] == "fits now" })
		eventually(t, "acked", func() bool { return f.info(t).AckFloor.Stream == 1 })
		if letters, _ := dl.snapshot(); len(letters) != 0 {
			t.Fatalf("dead-lettered after one stale failure: %+v", letters)
		}
	})

	t.Run("undecodable messages are dead-lettered", func(t *testing.T) {
		t.Parallel()
		dl := newMemDLQ()
		f := newFixtureWith(t, n, dl)
		f.publish(t, []byte(`{not json`))
		f.publishChange(t, 1, contracts.OpCreate, 1, "a")
		f.run(t)
		eventually(t, "acked", func() bool { return f.info(t).AckFloor.Stream == 2 })
		letters, _ := dl.snapshot()
		if len(letters) != 1 || letters[0].Class != sinkrunner.ClassUndecodable || letters[0].Table != "public.t" ||
			string(letters[0].Body) != "{not json" || !strings.HasPrefix(letters[0].MsgID, "undecodable:") {
			t.Fatalf("letters = %+v", letters)
		}
		if st := f.runner.Stats(); st.Terminated != 0 || st.DeadLettered != 1 || st.Applied != 1 {
			t.Errorf("stats = %+v", st)
		}
	})

	t.Run("replay applies through the running runner and isolates what still fails", func(t *testing.T) {
		t.Parallel()
		f := newFixtureWith(t, n, newMemDLQ())
		f.drv.rejected = "bad"
		mk := func(seq int64, id int, name string) contracts.Change {
			return contracts.Change{V: 1, Op: contracts.OpCreate,
				Source:  contracts.Source{SourceID: f.sourceID, Schema: "public", Table: "t", CommitLSN: "0/20", Seq: seq},
				Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
				Key:     contracts.Row{"id": json.RawMessage(fmt.Sprint(id))},
				After:   contracts.Row{"id": json.RawMessage(fmt.Sprint(id)), "name": json.RawMessage(fmt.Sprintf("%q", name))}}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = f.runner.Run(ctx) }()
		failed, err := f.runner.Replay(context.Background(), []contracts.Change{mk(1, 1, "a"), mk(2, 2, "bad"), mk(3, 3, "c")})
		if err != nil || len(failed) != 3 || failed[0] != nil || failed[2] != nil || !sinkrunner.IsPermanent(failed[1]) {
			t.Fatalf("replay = %v, %v", failed, err)
		}
		if rows, _ := f.drv.snapshot(); len(rows) != 2 || rows["1"] != "a" || rows["3"] != "c" {
			t.Fatalf("rows = %v", rows)
		}
		f.drv.setFailing(errors.New("connection reset"))
		if _, err := f.runner.Replay(context.Background(), []contracts.Change{mk(4, 4, "d")}); err == nil ||
			!strings.Contains(err.Error(), "connection reset") || sinkrunner.IsPermanent(err) {
			t.Fatalf("replay while the destination is down = %v, want the transient error", err)
		}
		cancel()
		<-done
		if _, err := f.runner.Replay(context.Background(), []contracts.Change{mk(5, 5, "e")}); !errors.Is(err, sinkrunner.ErrStopped) {
			t.Fatalf("replay on a stopped runner = %v, want ErrStopped", err)
		}
	})
}

func TestErrorClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{sinkrunner.Permanent(sqlStateError{code: "23514"}), sinkrunner.ClassConstraint},
		{fmt.Errorf("apply: %w", sinkrunner.Permanent(sqlStateError{code: "23505"})), sinkrunner.ClassConstraint},
		{sinkrunner.Permanent(sqlStateError{code: "22001"}), sinkrunner.ClassTooLong},
		{sinkrunner.Permanent(sqlStateError{code: "22003"}), sinkrunner.ClassOutOfRange},
		{sinkrunner.Permanent(sqlStateError{code: "22021"}), sinkrunner.ClassEncoding},
		{sinkrunner.Permanent(sqlStateError{code: "22P02"}), sinkrunner.ClassInvalidValue},
		{sinkrunner.Permanent(errors.New("no key")), sinkrunner.ClassPermanent},
		{sinkrunner.PermanentClass("type_mismatch", sqlStateError{code: "22003"}), "type_mismatch"},
		{sqlStateError{code: "40001"}, sinkrunner.ClassTransient},
		{errors.New("connection refused"), sinkrunner.ClassTransient},
	}
	for _, tt := range tests {
		if got := sinkrunner.ErrorClass(tt.err); got != tt.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if sinkrunner.PermanentClass("x", nil) != nil {
		t.Error("PermanentClass(nil) must be nil")
	}
	for code, want := range map[string]bool{"22001": true, "23505": true, "54000": true, "22P02": true,
		"40001": false, "40P01": false, "08006": false, "57014": false, "53300": false, "": false, "23": false} {
		if got := sinkrunner.PermanentSQLState(code); got != want {
			t.Errorf("PermanentSQLState(%q) = %v, want %v", code, got, want)
		}
	}
}
