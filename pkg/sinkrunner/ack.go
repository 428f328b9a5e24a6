package sinkrunner

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// inFlight is one batch being settled. A change is settled once the Apply
// holding it committed or its dead letter is stored (or, without a queue,
// it was dropped as invalid); a message is settled (acked or terminated)
// once all its changes are, so that only the rest is nak'ed.
type inFlight struct {
	msgs []jetstream.Msg
	// at, first and sizes are the batch's (batch.at): the message of each
	// change, each message's first change and number of changes.
	at    []int
	first []int
	sizes []int
	// left[j] is how many changes of msgs[j] are not settled yet; done[j]
	// says msgs[j] is acked or terminated.
	left []int
	done []bool
}

func newInFlight(b *batch) *inFlight {
	return &inFlight{msgs: b.msgs, at: b.at, first: b.first, sizes: b.sizes,
		left: slices.Clone(b.sizes), done: make([]bool, len(b.msgs))}
}

// settle marks the changes idx settled and returns the messages (indexes
// in msgs) whose last unsettled change was among them: those to ack now.
// A change is settled once.
func (f *inFlight) settle(idx []int) []int {
	var out []int
	for _, i := range idx {
		j := f.at[i]
		f.left[j]--
		if f.left[j] == 0 {
			out = append(out, j)
		}
	}
	return out
}

// nakUnsettled hands the messages not acked or terminated (any of their
// changes unsettled) back to JetStream for redelivery. The changes of
// theirs already applied are applied again then, which the drivers'
// version guards make harmless. Best effort: an unacked message is
// redelivered anyway.
func (f *inFlight) nakUnsettled(log *slog.Logger) {
	for i, m := range f.msgs {
		if f.done[i] {
			continue
		}
		if err := m.Nak(); err != nil {
			log.Debug("nak unapplied message", "subject", m.Subject(), "error", err)
			return
		}
	}
}

// acker acks what the applier settled. Only the applier uses it.
type acker struct {
	log *slog.Logger
	// confirming is closed when the last ack's confirmation returned.
	confirming chan struct{}
}

// ack acknowledges f.msgs[idx]. Callers ack only what is durable: messages
// whose every change is settled (inFlight.settle), by committed Applies or
// dead letters the queue has stored. Acks
// are processed in order on one connection, so a confirmed DoubleAck of the
// last message means the plain acks before it landed too. The confirmation
// is awaited in the background, while the next batch applies (one at a
// time: the next ack waits for it first): it only tells whether to warn. A
// lost ack only causes a redelivery, which the driver's version guards (and
// the dead-letter queue's deduplication) make harmless.
func (a *acker) ack(ctx context.Context, f *inFlight, idx []int) {
	if len(idx) == 0 {
		return
	}
	a.awaitConfirm()
	for _, i := range idx[:len(idx)-1] {
		if err := f.msgs[i].Ack(); err != nil {
			a.log.Warn("ack message", "subject", f.msgs[i].Subject(), "error", err)
		}
		f.done[i] = true
	}
	last, n := f.msgs[idx[len(idx)-1]], len(idx)
	f.done[idx[len(idx)-1]] = true
	done := make(chan struct{})
	a.confirming = done
	go func() {
		defer close(done)
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := last.DoubleAck(actx); err != nil && ctx.Err() == nil {
			a.log.Warn("confirm acks; the messages may be redelivered", "messages", n, "error", err)
		}
	}()
}

// awaitConfirm waits for the last ack's confirmation.
func (a *acker) awaitConfirm() {
	if a.confirming != nil {
		<-a.confirming
		a.confirming = nil
	}
}
