package sinkrunner

import (
	"context"
	"errors"

	"github.com/rosettacdc/rosetta/contracts"
)

// ErrStopped is returned by Replay when the runner is not running: it has
// stopped, or stops before it serves the request.
var ErrStopped = errors.New("sink runner is not running")

type replayRequest struct {
	ctx     context.Context
	changes []contracts.Change
	reply   chan replayReply // buffered: the runner never blocks on it
}

type replayReply struct {
	failed []error
	err    error
}

// Replay applies changes (dead letters being recovered) through the
// runner's driver between two batches of its consumer, so that a replay
// never runs concurrently with the runner's own Apply. Changes are applied
// as a batch that failed permanently would be: all in one Apply, then halves,
// down to single changes. It returns, per change, nil when an Apply holding
// it committed (a change superseded by a newer one of the same key in that
// Apply counts as applied: the version guards would have skipped it anyway)
// and the permanent error when it fails on its own. A transient error ends
// the call with that error and no per-change results; parts may have
// committed, and applying them again is harmless. It returns ErrStopped when
// the runner is not running.
func (r *Runner) Replay(ctx context.Context, changes []contracts.Change) ([]error, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	req := replayRequest{ctx: ctx, changes: changes, reply: make(chan replayReply, 1)}
	select {
	case r.replays <- req:
	case <-r.stopped:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case rep := <-req.reply:
		return rep.failed, rep.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Runner) serveReplay(ctx context.Context, req replayRequest) replayReply {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(req.ctx, cancel)()
	all := make([]int, len(req.changes))
	for i := range all {
		all[i] = i
	}
	iso := &isolation{changes: req.changes, failed: map[int]error{}}
	if err := r.isolate(rctx, iso, all, nil); err != nil {
		if ctx.Err() != nil {
			err = ErrStopped
		}
		return replayReply{err: err}
	}
	out := make([]error, len(req.changes))
	for i, err := range iso.failed {
		out[i] = err
	}
	return replayReply{failed: out}
}
