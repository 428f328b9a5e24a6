package sinkrunner

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// holder is the keeper's registry: the batches whose messages the runner
// holds unacked, from the fetcher gathering them until the applier settled
// or nak'ed every one. The fetcher appends to a held batch through it (the
// keeper reads the messages meanwhile); tombstone collection reads it to
// bound what the runner holds.
type holder struct {
	mu   sync.Mutex
	held map[*batch]struct{}
}

// hold registers b; release unregisters it once every one of its messages
// is settled or nak'ed.
func (h *holder) hold(b *batch) {
	h.mu.Lock()
	h.held[b] = struct{}{}
	h.mu.Unlock()
}

func (h *holder) release(b *batch) {
	h.mu.Lock()
	delete(h.held, b)
	h.mu.Unlock()
}

// append adds m to held batch b.
func (h *holder) append(b *batch, m jetstream.Msg) {
	h.mu.Lock()
	b.msgs = append(b.msgs, m)
	h.mu.Unlock()
}

// messages appends every held message to dst.
func (h *holder) messages(dst []jetstream.Msg) []jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	for b := range h.held {
		dst = append(dst, b.msgs...)
	}
	return dst
}

// keepInProgress marks every held message in progress every interval until
// ctx ends, so that the ack wait does not expire while its batch is
// gathered, waits for the applier, or is applied, retried, bisected or
// dead-lettered. Marking a settled message is refused by the client
// without a round trip.
func (h *holder) keepInProgress(ctx context.Context, every time.Duration, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		msgs = h.messages(msgs[:0])
		for _, m := range msgs {
			if err := m.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				log.Debug("mark message in progress", "subject", m.Subject(), "error", err)
			}
		}
		clear(msgs)
	}
}
