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
// the applier settling them. A message holds one change (envelope version
// 1) or several (version 2: changes of one table from one transaction);
// the batch is counted, applied, bisected and dead-lettered per change,
// and a message is acked once every one of its changes is settled
// (inFlight).
type batch struct {
	// msgs are in delivery order. The fetcher appends through Runner.held
	// (the keeper reads them) until it hands the batch over.
	msgs []jetstream.Msg
	// changes are the changes of msgs, in delivery order; errs[i] is why
	// changes[i] is not a valid change (nil when it is), and bad counts
	// those. A message whose body cannot be read at all is one entry, a
	// zero change with an unreadableError.
	changes []contracts.Change
	errs    []error
	bad     int
	// at[i] is the index in msgs of changes[i]'s message; first[j] and
	// sizes[j] are the index in changes of msgs[j]'s first entry and how
	// many it has. The fetcher alone writes them, before the hand-over.
	at    []int
	first []int
	sizes []int
	// collapsed, when set, is the collapse of the valid changes, computed
	// by the fetcher while a full batch waited for the applier.
	collapsed *collapsed
}

// unreadableError marks the entry of a message whose body could not be
// read at all: it stands for the whole message, which is dead-lettered (or
// terminated) as it was consumed.
type unreadableError struct{ err error }

func (e unreadableError) Error() string { return e.err.Error() }
func (e unreadableError) Unwrap() error { return e.err }

func unreadable(err error) bool {
	var u unreadableError
	return errors.As(err, &u)
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
// A pull request asks for messages, a batch holds at most BatchSize
// changes: the request asks for the room left in the batch being gathered
// over the changes per message seen lately (perMessage), so a batch fills
// in about one request. Every message delivered is held, and kept in
// progress, at once: a message that arrives when the batch being gathered
// is full (the estimate was low) starts the next one, and full batches
// queue for the applier; no request is made while one is queued. A batch
// thus overshoots BatchSize by less than one message's changes.
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
	// pin says whether this fetcher holds the consumer's pin: JetStream
	// sent it the pin id, and no pull was refused for a moved pin since;
	// and whether it is giving it up (balance.go).
	var pin pinState
	defer pin.lost(&r.pins)
	var (
		release <-chan time.Time       // set while a release waits for the acks
		resume  <-chan time.Time       // set while a given-up partition pauses
		pending *batch                 // being gathered; nil when empty
		full    []*batch               // gathered to BatchSize, in order, waiting for the applier
		est     perMessage             // changes per message, for the size of a pull
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
		if pulled == nil && retry == nil && done != nil && len(full) == 0 && pending == nil && resume == nil &&
			r.cfg.Unpin != nil && pin.overShare(&r.pins, r.cfg.Share) {
			r.log.Info("giving a partition up to another sink instance", "consumer", cons.CachedInfo().Name)
			release = time.After(0)
		}
		if pulled == nil && retry == nil && done != nil && len(full) == 0 && !pin.releasing && resume == nil {
			b, err := cons.Fetch(est.ask(r.cfg.BatchSize-pending.len()), jetstream.FetchMaxWait(pullExpiry),
				jetstream.FetchPriorityGroup(natsx.SinkGroup))
			if err != nil && r.pinMoved(err) {
				pin.lost(&r.pins)
			} else if err != nil {
				retry = r.fetchFailed(ctx, err, &backoff)
			} else if err == nil {
				pull, pulled, got = b, b.Messages(), 0
			}
		}
		if done == nil && pulled == nil {
			// Stopping, and nothing more can arrive.
			for _, b := range append(full, pending) {
				if b != nil {
					newInFlight(b).nakUnsettled(r.log)
					r.held.release(b)
				}
			}
			if pin.pinned {
				r.unpin(cons, pin.id)
			}
			return
		}
		var send chan<- *batch
		next := pending
		if len(full) > 0 {
			next = full[0]
		}
		if done != nil && (len(full) > 0 || pending.len() > 0 && waited) {
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
					pin.lost(&r.pins)
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
			if id := m.Headers().Get(pinHeader); id != "" {
				pin.held(&r.pins, id)
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
			est.add(pending.sizes[len(pending.sizes)-1])
			if pending.len() >= r.cfg.BatchSize {
				// Full: nothing joins it any more, so collapse it now,
				// while the applier is still busy with the previous one.
				pending.collapse()
				full = append(full, pending)
				pending = nil
				wait.Stop()
			}
		case send <- next:
			if len(full) > 0 {
				full[0] = nil
				full = full[1:]
			} else {
				pending = nil
				wait.Stop()
			}
		case <-waitC:
			waited = true
		case <-retry:
			retry = nil
		case <-release:
			// Give the pin up once what this fetcher delivered is acked,
			// so the next holder starts after this one's last change.
			release = time.After(releaseCheck)
			if pending == nil && len(full) == 0 && settled(ctx, cons) {
				r.unpin(cons, pin.id)
				pin.lost(&r.pins)
				release, resume = nil, time.After(releasePause)
			}
		case <-resume:
			resume = nil
		case <-done:
			done = nil
		}
	}
}

// len is the number of entries (changes) in b: what BatchSize bounds.
func (b *batch) len() int {
	if b == nil {
		return 0
	}
	return len(b.changes)
}

// add appends m, decoded with dec, to b: every change of it, each with its
// own Check error, or one unreadable entry when the body cannot be read.
func (r *Runner) add(dec *cdc.Decoder, b *batch, m jetstream.Msg) {
	n := len(b.changes)
	var err error
	b.changes, b.errs, err = dec.DecodeMessage(m.Data(), b.changes, b.errs)
	if err != nil {
		seq, _ := position(m)
		r.log.Error("undecodable change message", "subject", m.Subject(), "stream_seq", seq, "error", err)
		b.changes = append(b.changes, contracts.Change{})
		b.errs = append(b.errs, unreadableError{err})
	}
	j := len(b.msgs)
	for i := n; i < len(b.changes); i++ {
		b.at = append(b.at, j)
		if e := b.errs[i]; e != nil {
			b.bad++
			if err == nil {
				seq, _ := position(m)
				r.log.Error("invalid change in a message; it is set aside alone", "subject", m.Subject(),
					"stream_seq", seq, "change", i-n, "error", e)
			}
		}
	}
	b.first = append(b.first, n)
	b.sizes = append(b.sizes, len(b.changes)-n)
	r.held.append(b, m)
}

// valid returns the indexes and changes of b's valid changes.
func (b *batch) valid() ([]int, []contracts.Change) {
	if b.bad == 0 {
		idx := make([]int, len(b.changes))
		for i := range idx {
			idx[i] = i
		}
		return idx, b.changes
	}
	idx := make([]int, 0, len(b.changes)-b.bad)
	changes := make([]contracts.Change, 0, len(b.changes)-b.bad)
	for i, err := range b.errs {
		if err == nil {
			idx = append(idx, i)
			changes = append(changes, b.changes[i])
		}
	}
	return idx, changes
}

// perMessage estimates how many changes the next messages hold, to ask a
// pull for as many messages as fill the room left in a batch: the average
// over the messages added lately (halved past a window, so that it follows
// a stream moving from version 1 messages to version 2 ones).
type perMessage struct{ msgs, changes int }

const perMessageWindow = 256

func (e *perMessage) add(changes int) {
	e.msgs++
	e.changes += max(changes, 1)
	if e.msgs >= perMessageWindow {
		e.msgs, e.changes = e.msgs/2, e.changes/2
	}
}

// ask returns how many messages to pull for room changes: room over the
// average, rounded up (the batch then overshoots by less than one
// message), at least 1 and at most room. Before any message is seen it is
// 1: a first pull of room messages of ChunkChanges changes each would
// gather room*1024 changes at once.
func (e *perMessage) ask(room int) int {
	if e.msgs == 0 || e.changes == 0 {
		return 1
	}
	return max(1, min(room, (room*e.msgs+e.changes-1)/e.changes))
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

// unpin releases cons's pin, id, as the runner stops or gives the
// partition up (Config.Unpin): its unacked messages are nak'ed or acked
// already, and another instance waiting on the partition is pinned at its
// next pull rather than after the pinned TTL. JetStream's unpin releases
// whichever client is pinned, so it is sent only while the consumer is
// still pinned to id: a pin that moved unnoticed (the TTL passed during a
// long apply) is another instance's to keep.
func (r *Runner) unpin(cons jetstream.Consumer, id string) {
	if r.cfg.Unpin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		r.log.Warn("read the partition's pin before releasing it; another instance takes it after the pinned TTL", "error", err)
		return
	}
	if pinnedTo(info) != id {
		r.log.Info("the partition's pin moved to another sink instance; not releasing it", "consumer", info.Name)
		return
	}
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
