package sinkrunner

import (
	"context"
	"fmt"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/jitter"
)

// process settles one batch: it dead-letters (or drops) the entries that
// are not a valid change, then applies the valid changes and acks each
// message once all its changes are settled.
func (r *Runner) process(ctx context.Context, b *batch) {
	f := newInFlight(b)
	if ctx.Err() != nil {
		f.nakUnsettled(r.log)
		return
	}
	if b.bad > 0 {
		var bad []int
		for i, err := range b.errs {
			if err != nil {
				bad = append(bad, i)
			}
		}
		if !r.settleInvalid(ctx, f, b, bad) {
			f.nakUnsettled(r.log)
			return
		}
	}
	idx, changes := b.valid()
	if len(idx) == 0 {
		return
	}
	r.applyUntilDone(ctx, f, idx, changes, b.collapsed)
}

// applyUntilDone applies one batch's valid changes (changes[k] is the
// batch's change idx[k]) until they commit or ctx ends. The same changes
// are retried: nothing later is fetched while a batch fails, so per-key
// order is kept. With a dead-letter queue, a permanent failure is isolated
// instead (see isolate) and the batch completes.
func (r *Runner) applyUntilDone(ctx context.Context, f *inFlight, idx []int, changes []contracts.Change, pre *collapsed) {
	all := make([]int, len(changes))
	for i := range all {
		all[i] = i
	}
	apply := func() error {
		if p := pre; p != nil {
			// The fetcher collapsed the batch while it waited. A retry
			// collapses it again: a driver may keep what it was given.
			pre = nil
			return r.applyCollapsed(ctx, changes, p.batches, p.err)
		}
		return r.applySubset(ctx, changes, all)
	}
	isolating := func(err error) (bool, bool) {
		stop := IsPermanent(err) && r.dlq != nil
		return stop, stop
	}
	err := r.retryApply(ctx, len(changes), apply, isolating)
	switch {
	case err == nil:
		r.committed(ctx, f, idx)
	case ctx.Err() != nil:
		// Shutting down mid-batch: never ack. Nak so that the next
		// runner of this consumer (a restart after a config change)
		// gets the batch at once rather than after the ack wait; if the
		// Nak is lost it is redelivered after the ack wait.
		f.nakUnsettled(r.log)
	default:
		r.isolateAndDeadLetter(ctx, f, idx, changes, all, err)
	}
}

// retryApply calls apply until it commits (nil) or ctx ends (ctx.Err()).
// final says which errors end the loop instead of being retried (stop) and
// whether such an error is reported first (report); every error retried is
// reported (applyFailed) and retried after a growing backoff. The batch
// loop (applyUntilDone) and the isolation of a batch's parts (isolate)
// differ only in final.
func (r *Runner) retryApply(ctx context.Context, n int, apply func() error, final func(error) (stop, report bool)) error {
	b := r.newBackoff()
	for attempt := 1; ; attempt++ {
		err := apply()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := b.next()
		stop, report := final(err)
		if report || !stop {
			r.applyFailed(ctx, err, n, attempt, wait)
		}
		if stop {
			return err
		}
		if !sleep(ctx, jitter.Spread(wait)) {
			return ctx.Err()
		}
	}
}

// isolateAndDeadLetter handles a batch whose Apply failed permanently: it
// applies every part of it that commits, and dead-letters exactly the
// changes that fail on their own, each only after the queue stored it; a
// message is acked once all its changes are settled either way, so a
// message of several changes whose one change is rejected has the others
// applied, that one dead-lettered, and is acked once both are done.
func (r *Runner) isolateAndDeadLetter(ctx context.Context, f *inFlight, idx []int, changes []contracts.Change, all []int, first error) {
	iso := &isolation{changes: changes, retry: true, failed: map[int]error{},
		committed: func(part []int) { r.committed(ctx, f, pick(idx, part)) }}
	err := r.isolate(ctx, iso, all, first)
	failed := iso.failed
	if err != nil {
		// Only ctx ending stops isolate when it retries transient
		// errors. What committed was settled; the messages with a
		// change left are redelivered.
		f.nakUnsettled(r.log)
		return
	}
	var at []int // the batch's indexes of the letters' changes
	var letters []DeadLetter
	for k := range changes {
		if err, ok := failed[k]; ok {
			at = append(at, idx[k])
			letters = append(letters, r.letter(f, idx[k], &changes[k], err))
		}
	}
	if !r.deadLetter(ctx, f, at, letters) {
		f.nakUnsettled(r.log)
	}
}

// pick returns idx[part...].
func pick(idx, part []int) []int {
	out := make([]int, len(part))
	for i, k := range part {
		out[i] = idx[k]
	}
	return out
}

// isolation is the state of one isolate call tree.
type isolation struct {
	changes []contracts.Change
	// retry: transient errors are retried with backoff until ctx ends;
	// otherwise the first one ends the isolation.
	retry bool
	// committed, when set, is called with the indexes of every Apply that
	// committed.
	committed func([]int)
	// failed collects the permanent error of each change that fails on
	// its own.
	failed map[int]error
	// failures counts the Applies that failed permanently.
	failures int
}

// isolate applies changes[idx] in one Apply or, when that fails
// permanently, each half in its own Apply, recursively, down to single
// changes: so every change that can be applied is, in few transactions, and
// iso.failed collects the changes that fail on their own. known, when not
// nil, is the error applying changes[idx] already returned. Order does not
// matter: the driver's version guards make the state the same whichever
// part commits first.
//
// A change is judged only by an Apply that follows a failed one: drivers
// drop what they cached about the destination after a failed Apply, so a
// change that failed against a stale cache (a column widened to fix the
// cause) is applied again rather than dead-lettered.
func (r *Runner) isolate(ctx context.Context, iso *isolation, idx []int, known error) error {
	err := known
	if err == nil {
		err = r.applyRetrying(ctx, iso.changes, idx, iso.retry)
	}
	switch {
	case err == nil:
		if iso.committed != nil {
			iso.committed(idx)
		}
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case !IsPermanent(err):
		return err
	}
	iso.failures++
	if len(idx) == 1 {
		if iso.failures == 1 {
			return r.isolate(ctx, iso, idx, nil)
		}
		iso.failed[idx[0]] = err
		return nil
	}
	mid := len(idx) / 2
	if err := r.isolate(ctx, iso, idx[:mid], nil); err != nil {
		return err
	}
	return r.isolate(ctx, iso, idx[mid:], nil)
}

// applyRetrying applies changes[idx]; with retry, transient errors are
// retried with backoff until the Apply commits, fails permanently or ctx
// ends.
func (r *Runner) applyRetrying(ctx context.Context, changes []contracts.Change, idx []int, retry bool) error {
	apply := func() error { return r.applySubset(ctx, changes, idx) }
	final := func(err error) (bool, bool) { return !retry || IsPermanent(err), false }
	return r.retryApply(ctx, len(idx), apply, final)
}

// applySubset collapses changes[idx] and applies them in one Apply, bounded
// by ApplyTimeout. A batch that does not collapse is a permanent error.
func (r *Runner) applySubset(ctx context.Context, changes []contracts.Change, idx []int) error {
	sub := changes
	if len(idx) != len(changes) {
		sub = make([]contracts.Change, len(idx))
		for i, j := range idx {
			sub[i] = changes[j]
		}
	}
	batches, err := cdc.Collapse(sub)
	return r.applyCollapsed(ctx, sub, batches, err)
}

// applyCollapsed applies batches, the collapse of changes (which failed
// with collapseErr), in one Apply bounded by ApplyTimeout.
func (r *Runner) applyCollapsed(ctx context.Context, sub []contracts.Change, batches []cdc.TableBatch, collapseErr error) error {
	if collapseErr != nil {
		// Decode checked every change on its own, so this is a batch
		// whose changes contradict each other (key columns differ).
		return Permanent(fmt.Errorf("collapse batch: %w", collapseErr))
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	start := time.Now()
	err := r.drv.Apply(actx, batches)
	if err == nil && r.cfg.Observer != nil {
		// Apply returned nil: the destination transaction committed.
		r.cfg.Observer.BatchApplied(r.cfg.PipelineID, r.cfg.DestinationID, sub, time.Since(start))
	}
	if err == nil && r.inc != nil {
		r.comp.add(r.inc.Incomplete())
	}
	return err
}

func (r *Runner) applyFailed(ctx context.Context, err error, n, attempt int, backoff time.Duration) {
	r.stats.update(func(s *Stats) {
		s.Failures++
		s.LastError = err.Error()
	})
	permanent := IsPermanent(err)
	if r.cfg.Observer != nil {
		r.cfg.Observer.ApplyFailed(r.cfg.PipelineID, r.cfg.DestinationID, ErrorClass(err))
	}
	msg := "apply batch failed; retrying the same batch"
	if permanent && r.dlq != nil {
		msg = "apply batch failed permanently; isolating the changes the destination rejects"
	}
	r.log.Error(msg, "changes", n, "attempt", attempt, "permanent", permanent, "class", ErrorClass(err),
		"retry_in", backoff, "error", err)
	r.health.failed(ctx, err, true)
}

// committed settles the changes f's batch idx of an Apply that committed,
// and acks the messages that leaves with every change settled.
func (r *Runner) committed(ctx context.Context, f *inFlight, idx []int) {
	r.acks.ack(ctx, f, f.settle(idx))
	now := time.Now().UTC()
	r.stats.update(func(s *Stats) {
		s.Applied += uint64(len(idx))
		s.Batches++
		s.LastAppliedAt = now
		s.LastError = ""
	})
	r.health.applied(ctx, false)
}
