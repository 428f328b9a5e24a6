package sinkrunner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/jitter"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// pullExpiry is how long one pull request waits on the server for messages.
// Batches do not depend on it (the fetcher hands a batch over in the middle
// of a request); it bounds how long a stopping runner waits for its last
// request to end, and how often an idle runner asks again.
const pullExpiry = 500 * time.Millisecond

// batch is the messages of one Apply, from the fetcher gathering them to
// the applier settling them.
type batch struct {
	// msgs are in delivery order. The fetcher appends through Runner.held
	// (the keeper reads them) until it hands the batch over.
	msgs []jetstream.Msg
	// changes[i] is msgs[i] decoded; errs[i] is why it is not a valid
	// change (then changes[i] is zero); bad counts those.
	changes []contracts.Change
	errs    []error
	bad     int
	// collapsed, when set, is the collapse of the valid changes, computed
	// by the fetcher while a full batch waited for the applier.
	collapsed *collapsed
}

// caughtUp reports whether JetStream had nothing more for the consumer
// when it delivered the batch's last message.
func (b *batch) caughtUp() bool {
	if len(b.msgs) == 0 {
		return false
	}
	meta, err := b.msgs[len(b.msgs)-1].Metadata()
	return err == nil && meta.NumPending == 0
}

type collapsed struct {
	batches []cdc.TableBatch
	err     error
}

// fetchLoop gathers batches and hands each to the applier through ready,
// until ctx ends; then it waits for its last pull request to end (messages
// delivered to a request nobody reads would only come back after the ack
// wait) and naks what it holds.
//
// A pull request asks for at most the room left in the batch being
// gathered, so a full batch never leaves delivered messages unread: every
// message delivered is held, and kept in progress, at once.
//
// Its wait is the request's own expiry (FetchMaxWait), not a context
// deadline: the server ends the request with a timeout status and the
// client reads until then. With a context deadline the client stops
// listening while the server may still be sending; a message delivered in
// that gap is lost to the runner and only redelivered after the ack wait
// (measured: e2e updates stalled for a minute under load).
func (r *Runner) fetchLoop(ctx context.Context, cons jetstream.Consumer, ready chan<- *batch) {
	// dec is this fetcher's. Its changes refer to the message data, which
	// stays alive, unmodified, while their batch is in flight.
	dec := cdc.NewDecoder()
	// pinned is set while this fetcher holds the consumer's pin: JetStream
	// sent it the pin id, and no pull was refused for a moved pin since.
	pinned := false
	var (
		pending *batch                 // being gathered; nil when empty
		pull    jetstream.MessageBatch // the open pull request
		pulled  <-chan jetstream.Msg   // its messages; nil when none is open
		got     int                    // messages the open request delivered
		retry   <-chan time.Time       // set while a failed fetch waits to be retried
		waited  bool                   // BatchWait passed since pending's first message
		wait    = time.NewTimer(time.Hour)
		backoff = r.newBackoff()
		done    = ctx.Done() // nil once ctx ended
	)
	wait.Stop()
	defer wait.Stop()
	for {
		if pulled == nil && retry == nil && done != nil && pending.len() < r.cfg.BatchSize {
			b, err := cons.Fetch(r.cfg.BatchSize-pending.len(), jetstream.FetchMaxWait(pullExpiry),
				jetstream.FetchPriorityGroup(natsx.SinkGroup))
			if err != nil && r.pinMoved(err) {
				pinned = false
			} else if err != nil {
				retry = r.fetchFailed(ctx, err, &backoff)
			} else if err == nil {
				pull, pulled, got = b, b.Messages(), 0
			}
		}
		if done == nil && pulled == nil {
			// Stopping, and nothing more can arrive.
			if pending != nil {
				(&inFlight{msgs: pending.msgs, settled: make([]bool, len(pending.msgs))}).nakUnsettled(r.log)
				r.held.release(pending)
			}
			if pinned {
				r.unpin(cons)
			}
			return
		}
		var send chan<- *batch
		if done != nil && pending.len() > 0 && (waited || pending.len() >= r.cfg.BatchSize) {
			send = ready
		}
		var waitC <-chan time.Time
		if pending != nil && !waited {
			waitC = wait.C
		}
		select {
		case m, ok := <-pulled:
			if !ok {
				err := pull.Error()
				pull, pulled = nil, nil
				switch {
				case r.pinMoved(err):
					// Another instance holds the partition now; keep
					// asking, to take it back when it goes.
					pinned = false
					continue
				case err != nil && got == 0:
					if done != nil {
						retry = r.fetchFailed(ctx, err, &backoff)
					}
					continue
				case err != nil:
					r.log.Warn("fetch ended early; applying what arrived", "error", err, "messages", got)
				}
				backoff.reset()
				// The consumer answers (again): say so even before the
				// next change arrives.
				r.health.fetchAnswered(ctx)
				continue
			}
			got++
			if m.Headers().Get(pinHeader) != "" {
				pinned = true
			}
			if !r.addressed(m) {
				continue
			}
			if pending == nil {
				pending = &batch{}
				r.held.hold(pending)
				waited = false
				wait.Reset(r.cfg.BatchWait)
			}
			r.add(dec, pending, m)
			if pending.len() >= r.cfg.BatchSize {
				// Full: nothing joins it any more, so collapse it now,
				// while the applier is still busy with the previous one.
				pending.collapse()
			}
		case send <- pending:
			pending = nil
			wait.Stop()
		case <-waitC:
			waited = true
		case <-retry:
			retry = nil
		case <-done:
			done = nil
		}
	}
}

func (b *batch) len() int {
	if b == nil {
		return 0
	}
	return len(b.msgs)
}

// add appends m, decoded with dec, to b.
func (r *Runner) add(dec *cdc.Decoder, b *batch, m jetstream.Msg) {
	c, err := dec.Decode(m.Data())
	if err != nil {
		seq, _ := position(m)
		r.log.Error("undecodable change message", "subject", m.Subject(), "stream_seq", seq, "error", err)
		b.bad++
	}
	b.changes = append(b.changes, c)
	b.errs = append(b.errs, err)
	r.held.append(b, m)
}

// valid returns the indexes and changes of b's valid changes.
func (b *batch) valid() ([]int, []contracts.Change) {
	if b.bad == 0 {
		idx := make([]int, len(b.msgs))
		for i := range idx {
			idx[i] = i
		}
		return idx, b.changes
	}
	idx := make([]int, 0, len(b.msgs)-b.bad)
	changes := make([]contracts.Change, 0, len(b.msgs)-b.bad)
	for i, err := range b.errs {
		if err == nil {
			idx = append(idx, i)
			changes = append(changes, b.changes[i])
		}
	}
	return idx, changes
}

// collapse collapses b's valid changes ahead of their first Apply.
func (b *batch) collapse() {
	_, changes := b.valid()
	if len(changes) == 0 {
		return
	}
	bs, err := cdc.Collapse(changes)
	b.collapsed = &collapsed{batches: bs, err: err}
}

// pinHeader carries the pin id on messages JetStream delivers to the
// pinned client of a consumer (nats.go reads it too, to send it back).
const pinHeader = "Nats-Pin-Id"

// unpin releases cons's pin as the runner stops (Config.Unpin): its
// unacked messages are nak'ed already, and another instance waiting on the
// partition is pinned at its next pull rather than after the pinned TTL.
func (r *Runner) unpin(cons jetstream.Consumer) {
	if r.cfg.Unpin == nil {
		return
	}
	info := cons.CachedInfo()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.cfg.Unpin(ctx, info.Stream, info.Name); err != nil {
		r.log.Warn("release the partition's pin; another instance takes it after the pinned TTL", "consumer", info.Name, "error", err)
	}
}

// pinMoved reports whether err says the partition's consumer pinned
// another sink instance (this one stopped pulling for longer than its
// pinned TTL): not a failure, and the client forgot its pin, so the next
// pull waits its turn.
func (r *Runner) pinMoved(err error) bool {
	if !errors.Is(err, jetstream.ErrPinIDMismatch) {
		return false
	}
	r.log.Info("a partition's consumer pinned another sink instance; this one stands by for it", "error", err)
	return true
}

// fetchFailed reports a failed fetch and returns when to try again.
func (r *Runner) fetchFailed(ctx context.Context, err error, b *backoff) <-chan time.Time {
	wait := b.next()
	if ctx.Err() == nil {
		r.log.Warn("fetch changes failed", "error", err, "retry_in", wait)
		r.health.failed(ctx, fmt.Errorf("fetch changes: %w", err), false)
	}
	return time.After(jitter.Spread(wait))
}

// addressed reports whether m is for this runner's destination. A message
// addressed to other destinations only (a backfill with destination_ids
// sets contracts.DestinationsHeader) is acked without being applied: this
// destination has nothing to write for it.
func (r *Runner) addressed(m jetstream.Msg) bool {
	if contracts.AddressedTo(m.Headers().Get(contracts.DestinationsHeader), r.cfg.DestinationID) {
		return true
	}
	if err := m.Ack(); err != nil {
		// Not acked: redelivered, and skipped again.
		r.log.Debug("ack message addressed to other destinations", "subject", m.Subject(), "error", err)
	}
	return false
}
