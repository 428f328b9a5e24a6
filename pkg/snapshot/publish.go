package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPublishWindow is the default bound on unacknowledged messages.
const DefaultPublishWindow = 8192

// Publisher publishes batches on the tables' change subjects with
// asynchronous publishes, at most window messages unacknowledged at a
// time. The window counts messages, not rows: a message holds up to
// contracts.ChunkChanges rows (and ChunkBytes bytes), so a batch of the
// default 10000 rows is a few messages per partition and stays within any
// window; the window paces the server's acknowledgements, while memory is
// bounded by the batch, which is encoded whole before it is published.
type Publisher struct {
	js         jetstream.JetStream
	window     int
	ackTimeout time.Duration
}

// NewPublisher returns a publisher on nc. Close it when done.
func NewPublisher(nc *nats.Conn, window int, ackTimeout time.Duration) (*Publisher, error) {
	if window <= 0 {
		window = DefaultPublishWindow
	}
	if ackTimeout <= 0 {
		ackTimeout = 30 * time.Second
	}
	// The client's own bound is above the window so that PublishMsgAsync
	// never stalls: the window is what paces the publishes.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window*2))
	if err != nil {
		return nil, fmt.Errorf("jetstream publisher: %w", err)
	}
	return &Publisher{js: js, window: window, ackTimeout: ackTimeout}, nil
}

// Close abandons pending publishes.
func (p *Publisher) Close() { p.js.CleanupPublisher() }

// Publish publishes every message of b and returns once JetStream
// acknowledged all of them (the caller checkpoints only then).
func (p *Publisher) Publish(ctx context.Context, b Batch) error {
	pending := make([]jetstream.PubAckFuture, 0, len(b.Msgs))
	acked := 0
	// One timer for the whole batch, reset per wait: a fresh timer per
	// message was measurable at this rate.
	t := time.NewTimer(p.ackTimeout)
	defer t.Stop()
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			return nil
		default:
		}
		t.Reset(p.ackTimeout)
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return fmt.Errorf("publish %s %s: %w", f.Msg().Subject, f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-t.C:
			return fmt.Errorf("publish %s: no ack within %s", f.Msg().Subject, p.ackTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, m := range b.Msgs {
		if len(pending)-acked >= p.window {
			if err := wait(pending[acked]); err != nil {
				return err
			}
			acked++
		}
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		pending = append(pending, f)
	}
	for _, f := range pending[acked:] {
		if err := wait(f); err != nil {
			return err
		}
	}
	return nil
}
