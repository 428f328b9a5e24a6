package sinkrunner

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// inFlight is one batch being settled: its messages and which of them are
// settled (acked or terminated), so that only the rest is nak'ed.
type inFlight struct {
	msgs    []jetstream.Msg
	settled []bool
}

func (f *inFlight) pick(idx []int) []jetstream.Msg {
	out := make([]jetstream.Msg, len(idx))
	for i, j := range idx {
		out[i] = f.msgs[j]
	}
	return out
}

// nakUnsettled hands the unsettled messages back to JetStream for
// redelivery. Best effort: an unacked message is redelivered anyway.
func (f *inFlight) nakUnsettled(log *slog.Logger) {
	for i, m := range f.msgs {
		if f.settled[i] {
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

// ack acknowledges f.msgs[idx]. Callers ack only what is durable: the
// messages of a committed Apply, or dead letters the queue has stored. Acks
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
		f.settled[i] = true
	}
	last, n := f.msgs[idx[len(idx)-1]], len(idx)
	f.settled[idx[len(idx)-1]] = true
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
