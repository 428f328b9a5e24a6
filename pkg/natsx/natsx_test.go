package natsx

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

func startServer(t *testing.T) jetstream.JetStream {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Port: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, js, err := Connect(ctx, e.ClientURL(), t.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}

// TestFullStreamRefusesRatherThanDrops checks the property capture's
// guarantee rests on: a full source stream refuses a publish (so capture
// does not confirm it) and keeps every change a consumer has not acked.
func TestFullStreamRefusesRatherThanDrops(t *testing.T) {
	t.Parallel()
	js := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureSourceStream(ctx, js, 7, StreamLimits{MaxBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	// Interest retention keeps messages only for consumers: create the
	// pipeline's consumer first, as capture does.
	cons, err := EnsurePipelineConsumer(ctx, js, 7, 1, 2, []Table{{Schema: "public", Name: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	subject := contracts.ChangeSubject(7, "public", "t", 0)
	body := make([]byte, 500)
	var stored int
	var refused error
	for i := 0; i < 50; i++ {
		_, err := js.Publish(ctx, subject, body, jetstream.WithMsgID(contracts.MsgID(7, "0/1", int64(i))))
		if err != nil {
			refused = err
			break
		}
		stored++
	}
	if refused == nil {
		t.Fatal("a 4 KB stream took 50 messages of 500 bytes: it must refuse when full")
	}
	var apiErr *jetstream.APIError
	if !errors.As(refused, &apiErr) {
		t.Fatalf("publish to a full stream: %v, want a JetStream API error", refused)
	}
	// The stream's count is exact at once; the consumer learns of new
	// messages asynchronously, so its pending count is polled.
	wantAll := func(when string) {
		t.Helper()
		stream, err := js.Stream(ctx, contracts.StreamName(7))
		if err != nil {
			t.Fatal(err)
		}
		si, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int(si.State.Msgs) != stored {
			t.Fatalf("%s: stream holds %d messages, want all %d stored changes (nothing discarded)", when, si.State.Msgs, stored)
		}
		var pending uint64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pending = info.NumPending; int(pending) == stored {
				return
			}
		}
		t.Fatalf("%s: consumer has %d pending, want all %d stored changes", when, pending, stored)
	}
	wantAll("full stream")
	// Re-publishing a stored id (capture after a crash) stores nothing new,
	// whether JetStream answers "duplicate" or "full".
	_, _ = js.Publish(ctx, subject, body, jetstream.WithMsgID(contracts.MsgID(7, "0/1", 0)))
	wantAll("after re-publishing a stored id")
}

func TestSourceStreamConfig(t *testing.T) {
	t.Parallel()
	c := SourceStreamConfig(3, StreamLimits{})
	if c.Retention != jetstream.InterestPolicy || c.Discard != jetstream.DiscardNew || c.Storage != jetstream.FileStorage {
		t.Fatalf("stream config %+v: want interest retention, discard new, file storage", c)
	}
	if c.MaxAge != 0 {
		t.Fatalf("MaxAge = %s: an age limit would drop unconsumed changes", c.MaxAge)
	}
	if c.Subjects[0] != "rosetta.cdc.3.>" || c.Name != "ROSETTA_CDC_3" {
		t.Fatalf("stream %s on %v", c.Name, c.Subjects)
	}
	for _, tt := range []struct {
		partition, partitions int
		name, filter          string
	}{
		{0, 1, "pipeline_4_dest_5", "rosetta.cdc.3.public.a%2Eb.*"},
		{0, 0, "pipeline_4_dest_5", "rosetta.cdc.3.public.a%2Eb.*"},
		{0, 4, "pipeline_4_dest_5_p0", "rosetta.cdc.3.public.a%2Eb.0"},
		{3, 4, "pipeline_4_dest_5_p3", "rosetta.cdc.3.public.a%2Eb.3"},
	} {
		cc := PipelineConsumerConfig(3, 4, 5, []Table{{Schema: "public", Name: "a.b"}}, tt.partition, tt.partitions)
		if cc.MaxDeliver != -1 || cc.AckPolicy != jetstream.AckExplicitPolicy || cc.Durable != tt.name || cc.FilterSubjects[0] != tt.filter ||
			cc.PriorityPolicy != jetstream.PriorityPolicyPinned || len(cc.PriorityGroups) != 1 || cc.PriorityGroups[0] != SinkGroup {
			t.Errorf("partition %d of %d: consumer config %+v", tt.partition, tt.partitions, cc)
		}
	}
}

// TestPipelineConsumersPerPartition: one consumer per partition, found by
// ListPipelineConsumers; a consumer from before partitions (no priority
// group) takes the pinned policy on update and keeps its position.
func TestPipelineConsumersPerPartition(t *testing.T) {
	t.Parallel()
	js := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureSourceStream(ctx, js, 11, StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	tables := []Table{{Schema: "public", Name: "t"}}
	// An existing consumer as earlier versions made it, with a change
	// delivered and acked.
	old := PipelineConsumerConfig(11, 1, 2, tables, 0, 1)
	old.PriorityGroups, old.PriorityPolicy, old.PinnedTTL = nil, jetstream.PriorityPolicyNone, 0
	if _, err := js.CreateOrUpdateConsumer(ctx, "ROSETTA_CDC_11", old); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := js.Publish(ctx, "rosetta.cdc.11.public.t.0", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := js.Consumer(ctx, "ROSETTA_CDC_11", "pipeline_1_dest_2")
	b, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsurePipelineConsumers(ctx, js, 11, 1, 2, tables, 1); err != nil {
		t.Fatalf("update a consumer from before partitions: %v", err)
	}
	if err := EnsurePipelineConsumers(ctx, js, 11, 3, 2, tables, 4); err != nil {
		t.Fatal(err)
	}
	cons, err := PipelineConsumers(ctx, js, 11, 1, 2, 1)
	if err != nil || len(cons) != 1 {
		t.Fatalf("consumers of pipeline 1: %v, %v", cons, err)
	}
	info, err := cons[0].Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned || info.NumPending != 1 || info.AckFloor.Stream != 1 {
		t.Fatalf("updated consumer: policy %v, %d pending, ack floor %d; want pinned, 1, 1", info.Config.PriorityPolicy, info.NumPending, info.AckFloor.Stream)
	}
	got, err := ListPipelineConsumers(ctx, js, 11)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, id := range got {
		names[id.Name()] = true
	}
	for _, id := range append(PipelineConsumerIDs(1, 2, 1), PipelineConsumerIDs(3, 2, 4)...) {
		if !names[id.Name()] {
			t.Errorf("ListPipelineConsumers misses %s; has %v", id.Name(), names)
		}
	}
	if len(names) != 5 {
		t.Errorf("ListPipelineConsumers = %v; want 5 consumers", names)
	}
	if err := DeletePipelineConsumer(ctx, js, 11, PipelineConsumerIDs(3, 2, 4)[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, "ROSETTA_CDC_11", "pipeline_3_dest_2_p2"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("after delete, partition 2's consumer: %v", err)
	}
}

// TestEnsureSourceStreamLeavesAnEqualStreamAlone checks that the server's
// copy of a source stream's config, with its defaults filled in, compares
// equal to Rosetta's (so ensuring it again does not update it), and that
// different limits do not compare equal and are applied.
func TestEnsureSourceStreamLeavesAnEqualStreamAlone(t *testing.T) {
	t.Parallel()
	js := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, lim := range []StreamLimits{{MaxBytes: 1 << 20}, {MaxBytes: 1 << 20}, {MaxBytes: 2 << 20}, {}} {
		s, err := EnsureSourceStream(ctx, js, 9, lim)
		if err != nil {
			t.Fatalf("ensure with %+v: %v", lim, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := SourceStreamConfig(9, lim)
		if !sameStreamConfig(info.Config, want) {
			t.Fatalf("ensure with %+v: the server's config %+v does not compare equal to Rosetta's", lim, info.Config)
		}
		if info.Config.MaxBytes != want.MaxBytes {
			t.Fatalf("ensure with %+v: MaxBytes %d, want %d", lim, info.Config.MaxBytes, want.MaxBytes)
		}
		other := want
		other.MaxBytes++
		if sameStreamConfig(info.Config, other) {
			t.Fatal("configs with different MaxBytes compare equal")
		}
	}
}

// TestDuplicateWindow checks that a source stream's dedup window is the one
// its limits name: an id published again inside it is dropped, and once
// the window has passed the server no longer remembers it (which is what
// bounds the memory the ids take), so the same id is stored again. An
// existing stream ensured with another window gets it.
func TestDuplicateWindow(t *testing.T) {
	t.Parallel()
	js := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureSourceStream(ctx, js, 5, StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	const window = time.Second
	s, err := EnsureSourceStream(ctx, js, 5, StreamLimits{Duplicates: window})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Duplicates; got != window {
		t.Fatalf("stream ensured with a %s window has %s", window, got)
	}
	// Interest retention keeps messages only for consumers.
	if _, err := EnsurePipelineConsumer(ctx, js, 5, 1, 2, []Table{{Schema: "public", Name: "t"}}); err != nil {
		t.Fatal(err)
	}
	subject := contracts.ChangeSubject(5, "public", "t", 0)
	id := contracts.MsgID(5, "0/16B3748", 0)
	publish := func() *jetstream.PubAck {
		t.Helper()
		ack, err := js.Publish(ctx, subject, []byte(`{}`), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	first := publish()
	if again := publish(); !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("re-published inside the window: %+v, want a duplicate of sequence %d", again, first.Sequence)
	}
	time.Sleep(window + 500*time.Millisecond)
	if later := publish(); later.Duplicate || later.Sequence == first.Sequence {
		t.Fatalf("re-published after the window: %+v, want a new message (the id was forgotten)", later)
	}
}
