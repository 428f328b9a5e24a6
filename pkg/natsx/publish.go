package natsx

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PayloadSlack is what a message's headers and protocol line may take
// beside its body within the server's max_payload: a body longer than
// max_payload less PayloadSlack is refused before it is sent.
const PayloadSlack = 256

// PublisherConfig is a Publisher's window and timeout.
type PublisherConfig struct {
	// Window bounds the publishes not yet acknowledged: Publish waits for
	// the oldest while Window are in flight. Positive.
	Window int
	// AckTimeout is how long a publish may stay unacknowledged after it
	// was sent before the publisher gives up on it. Positive.
	AckTimeout time.Duration
}

// Publisher publishes messages to JetStream asynchronously, at most
// Window unacknowledged at a time, and settles their acknowledgements in
// publish order (Acks). It is capture's and backfill's one way onto the
// change streams: the caller builds each message with its subject and
// Nats-Msg-Id (contracts), the publisher bounds what is in flight, refuses
// what the server could not take, and reports a refused or unacknowledged
// publish as an error naming its subject and id. A publish is safe to
// repeat: the Nats-Msg-Id makes JetStream drop a copy it already stored.
//
// Each publish carries a tag of the caller's (capture: the transaction it
// belongs to), handed back when the publish is settled. A Publisher is
// owned by one goroutine.
type Publisher[T any] struct {
	js         jetstream.JetStream
	cfg        PublisherConfig
	maxPayload int64
	acks       *Acks[T]
}

// NewPublisher returns a publisher on nc, with a JetStream publishing
// context of its own: Close abandons its pending publishes (their futures
// fail) without touching other users of nc. acks is where its publishes
// are tracked; nil for a queue of its own. Publishing needs no API prefix
// or domain, so the connection is all it takes.
func NewPublisher[T any](nc *nats.Conn, cfg PublisherConfig, acks *Acks[T]) (*Publisher[T], error) {
	if cfg.Window <= 0 || cfg.AckTimeout <= 0 {
		return nil, fmt.Errorf("jetstream publisher: window (%d) and ack timeout (%s) must be positive", cfg.Window, cfg.AckTimeout)
	}
	// The client's own bound is above the window so that PublishMsgAsync
	// never stalls: the window is what paces the publishes.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.Window*2))
	if err != nil {
		return nil, fmt.Errorf("jetstream publisher: %w", err)
	}
	if acks == nil {
		acks = NewAcks[T](nil)
	}
	return &Publisher[T]{js: js, cfg: cfg, maxPayload: nc.MaxPayload(), acks: acks}, nil
}

// Close abandons pending publishes.
func (p *Publisher[T]) Close() { p.js.CleanupPublisher() }

// Acks is the queue of the publisher's unsettled publishes.
func (p *Publisher[T]) Acks() *Acks[T] { return p.acks }

// PayloadError is a message the server's max_payload would refuse.
type PayloadError struct {
	Subject    string
	Size       int   // the body's bytes
	MaxPayload int64 // the server's max_payload
}

func (e *PayloadError) Error() string {
	return fmt.Sprintf("message on %s is %d bytes, more than the NATS server's max_payload (%d): raise max_payload",
		e.Subject, e.Size, e.MaxPayload)
}

// Publish sends m, whose Nats-Msg-Id header the caller set, once fewer
// than Window publishes are in flight, and tracks it with tag. A body the
// server would refuse is a *PayloadError, and nothing is sent. It does not
// wait for m's acknowledgement (Acks.Poll, Wait).
func (p *Publisher[T]) Publish(ctx context.Context, m *nats.Msg, tag T) error {
	for p.acks.InFlight() >= p.cfg.Window {
		if err := p.acks.WaitOldest(ctx, p.cfg.AckTimeout); err != nil {
			return err
		}
	}
	if p.maxPayload > 0 && int64(len(m.Data))+PayloadSlack > p.maxPayload {
		return &PayloadError{Subject: m.Subject, Size: len(m.Data), MaxPayload: p.maxPayload}
	}
	what := m.Subject + " " + m.Header.Get(jetstream.MsgIDHeader)
	f, err := p.js.PublishMsgAsync(m)
	if err != nil {
		return fmt.Errorf("publish %s: %w", what, err)
	}
	p.acks.Add(f, time.Now(), what, tag)
	return nil
}

// Wait returns once every publish is acknowledged, or with the first
// publish error, a timeout or ctx's error.
func (p *Publisher[T]) Wait(ctx context.Context) error {
	for p.acks.InFlight() > 0 {
		if err := p.acks.WaitOldest(ctx, p.cfg.AckTimeout); err != nil {
			return err
		}
	}
	return nil
}

// AckFuture is the part of jetstream.PubAckFuture Acks waits on.
type AckFuture interface {
	Ok() <-chan *jetstream.PubAck
	Err() <-chan error
}

// Acks holds asynchronous publishes not yet settled, oldest first, and
// settles them in that order: a publish counts as acknowledged only once
// every earlier one is, so a caller that confirms a position upstream
// (capture's slot, backfill's checkpoint) never passes a publish that may
// still fail. After an error the queue must not be used again.
type Acks[T any] struct {
	queue  []pendingAck[T]
	head   int // queue[:head] are settled
	settle func(tag T, ack *jetstream.PubAck)
	timer  *time.Timer // one for every wait: a fresh timer per message was measurable
}

type pendingAck[T any] struct {
	f    AckFuture
	tag  T
	at   time.Time
	what string // subject and msg id, for errors
}

// NewAcks returns an empty queue; settle, if not nil, is called with each
// publish's tag and acknowledgement as it is settled.
func NewAcks[T any](settle func(tag T, ack *jetstream.PubAck)) *Acks[T] {
	return &Acks[T]{settle: settle}
}

// Add records a publish sent at at; what names it in errors.
func (a *Acks[T]) Add(f AckFuture, at time.Time, what string, tag T) {
	a.queue = append(a.queue, pendingAck[T]{f: f, tag: tag, at: at, what: what})
}

// InFlight is the number of publishes not yet settled.
func (a *Acks[T]) InFlight() int { return len(a.queue) - a.head }

// Poll settles every acknowledgement that has arrived, oldest first,
// without waiting. It returns the first publish error, or an error when
// the oldest publish has waited longer than timeout.
func (a *Acks[T]) Poll(now time.Time, timeout time.Duration) error {
	for a.head < len(a.queue) {
		p := &a.queue[a.head]
		select {
		case ack := <-p.f.Ok():
			a.resolve(ack)
		case err := <-p.f.Err():
			return fmt.Errorf("publish %s: %w", p.what, err)
		default:
			if now.Sub(p.at) > timeout {
				return fmt.Errorf("publish %s: no acknowledgement from JetStream after %s", p.what, timeout)
			}
			return nil
		}
	}
	return nil
}

// WaitOldest blocks until the oldest unsettled publish is acknowledged,
// then polls. It returns the publish error, ctx's error, or a timeout
// when the oldest publish stays unacknowledged timeout after it was sent.
func (a *Acks[T]) WaitOldest(ctx context.Context, timeout time.Duration) error {
	if a.head == len(a.queue) {
		return nil
	}
	p := &a.queue[a.head]
	select {
	case ack := <-p.f.Ok():
		a.resolve(ack)
		return a.Poll(time.Now(), timeout)
	case err := <-p.f.Err():
		return fmt.Errorf("publish %s: %w", p.what, err)
	default:
	}
	left := max(timeout-time.Since(p.at), 0)
	if a.timer == nil {
		a.timer = time.NewTimer(left)
	} else {
		a.timer.Reset(left)
	}
	defer a.timer.Stop()
	select {
	case ack := <-p.f.Ok():
		a.resolve(ack)
	case err := <-p.f.Err():
		return fmt.Errorf("publish %s: %w", p.what, err)
	case <-a.timer.C:
		return fmt.Errorf("publish %s: no acknowledgement from JetStream after %s", p.what, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	return a.Poll(time.Now(), timeout)
}

// resolve settles the oldest publish, acknowledged by ack.
func (a *Acks[T]) resolve(ack *jetstream.PubAck) {
	p := &a.queue[a.head]
	if a.settle != nil {
		a.settle(p.tag, ack)
	}
	*p = pendingAck[T]{}
	a.head++
	// Drop the settled prefix once it is most of the slice, so a long
	// transaction does not keep every settled future alive.
	if a.head == len(a.queue) {
		a.queue, a.head = a.queue[:0], 0
	} else if a.head >= 1024 && a.head*2 >= len(a.queue) {
		n := copy(a.queue, a.queue[a.head:])
		clear(a.queue[n:])
		a.queue, a.head = a.queue[:n], 0
	}
}
