package natsx

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx/natsxtest"
)

// TestAcksLongQueue: a long run of publishes acknowledged with a lag is
// settled in order, with each tag, and the queue does not keep every
// settled publish.
func TestAcksLongQueue(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var settled []int
	a := NewAcks(func(tag int, _ *jetstream.PubAck) { settled = append(settled, tag) })
	var fs []*natsxtest.Future
	for i := 0; i < 5000; i++ {
		f := natsxtest.NewFuture()
		fs = append(fs, f)
		a.Add(f, now, "x", i)
		if i >= 100 {
			fs[i-100].Ack()
			if err := a.Poll(now, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a.InFlight() != 100 || len(a.queue) > 2200 {
		t.Fatalf("inFlight = %d, queue len = %d", a.InFlight(), len(a.queue))
	}
	for _, f := range fs[4900:] {
		f.Ack()
	}
	for a.InFlight() > 0 {
		if err := a.WaitOldest(context.Background(), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for i, tag := range settled {
		if tag != i {
			t.Fatalf("settled %d as the %dth", tag, i)
		}
	}
	if len(settled) != 5000 {
		t.Fatalf("settled %d of 5000", len(settled))
	}
}

// TestAcksErrors: a failed publish and one unacknowledged past the
// timeout (counted from its publish) are errors naming it; a later
// publish's ack settles nothing before it.
func TestAcksErrors(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a := NewAcks[struct{}](nil)
	f1, f2 := natsxtest.NewFuture(), natsxtest.NewFuture()
	a.Add(f1, now, "sub.1 id-1", struct{}{})
	a.Add(f2, now, "sub.2 id-2", struct{}{})
	f2.Ack()
	if err := a.Poll(now, time.Minute); err != nil || a.InFlight() != 2 {
		t.Fatalf("poll = %v, in flight %d; want nil, 2", err, a.InFlight())
	}
	f1.Fail(errors.New("nats: maximum bytes exceeded"))
	if err := a.Poll(now, time.Minute); err == nil || !strings.Contains(err.Error(), "sub.1 id-1") || !strings.Contains(err.Error(), "maximum bytes") {
		t.Fatalf("poll error = %v", err)
	}

	b := NewAcks[struct{}](nil)
	b.Add(natsxtest.NewFuture(), now.Add(-2*time.Minute), "slow", struct{}{})
	if err := b.Poll(now, time.Minute); err == nil || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Fatalf("timeout error = %v", err)
	}
	if err := b.WaitOldest(context.Background(), time.Minute); err == nil || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Fatalf("WaitOldest past the timeout = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.WaitOldest(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitOldest = %v, want deadline exceeded", err)
	}
}

// TestPublisher publishes more messages than the window through a real
// server, waits for every ack, and refuses a body over max_payload
// without sending it.
func TestPublisher(t *testing.T) {
	t.Parallel()
	js := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureSourceStream(ctx, js, 9, StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsurePipelineConsumer(ctx, js, 9, 1, 2, []Table{{Schema: "public", Name: "t"}}); err != nil {
		t.Fatal(err)
	}
	stored := 0
	acks := NewAcks(func(_ int, ack *jetstream.PubAck) {
		if !ack.Duplicate {
			stored++
		}
	})
	p, err := NewPublisher(js.Conn(), PublisherConfig{Window: 4, AckTimeout: 10 * time.Second}, acks)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	subject := contracts.ChangeSubject(9, "public", "t", 0)
	msg := func(i int, body []byte) *nats.Msg {
		return &nats.Msg{Subject: subject, Data: body, Header: nats.Header{jetstream.MsgIDHeader: {contracts.MsgID(9, "0/1", int64(i))}}}
	}
	for i := range 20 {
		if err := p.Publish(ctx, msg(i%10, []byte(`{}`)), i); err != nil {
			t.Fatal(err)
		}
		if p.Acks().InFlight() > 4 {
			t.Fatalf("%d publishes in flight, window 4", p.Acks().InFlight())
		}
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if stored != 10 {
		t.Fatalf("stored %d messages, want 10 (10 repeated ids)", stored)
	}
	big := make([]byte, js.Conn().MaxPayload())
	var tooBig *PayloadError
	if err := p.Publish(ctx, msg(99, big), 99); !errors.As(err, &tooBig) || tooBig.Size != len(big) || p.Acks().InFlight() != 0 {
		t.Fatalf("publish of %d bytes = %v, in flight %d; want a PayloadError and nothing sent", len(big), err, p.Acks().InFlight())
	}
}
