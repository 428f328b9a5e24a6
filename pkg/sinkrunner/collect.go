package sinkrunner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// TombstoneCollector is the optional capability of a Driver whose guard
// keeps tombstones (docs/delivery.md, "Collecting tombstones").
//
// Contract: CollectTombstones raises the table's collect floor to floor
// (never lowers it) and then deletes the table's tombstones older than the
// floor, in transactions of a bounded size. From the commit that raises the
// floor on, Apply refuses every change older than the floor that finds no
// row for its key, and lets it fill no column: that is what the collected
// tombstones did, so collecting changes no outcome of Apply. It is never
// called concurrently with Apply. A table the destination does not have is
// not an error (zero result).
type TombstoneCollector interface {
	CollectTombstones(ctx context.Context, table contracts.Table, floor contracts.Version) (CollectResult, error)
}

// CollectResult is what one CollectTombstones call did to one table.
type CollectResult struct {
	// Collected is the number of tombstones deleted.
	Collected int64
	// Remaining is the number of tombstones the table keeps.
	Remaining int64
	// Floor is the table's collect floor after the call.
	Floor contracts.Version
}

// GuardBounds says what may still reach a destination from outside the
// runner's consumer; the sink service implements it from the config store
// (capture's confirmed position, backfill jobs) and the dead-letter queue.
// Tables are "schema.table" source names.
type GuardBounds interface {
	// PublishFloor returns, per table, a version that every change not
	// yet stored in the source's stream is at least: capture's confirmed
	// position (everything capture publishes from now on, first copies
	// and re-publishes after a restart, commits at or after it), or
	// lower. A table missing from the map has no such bound now (a
	// backfill of it is running: its next batch may carry an older
	// snapshot version); it is not collected.
	// A table another pipeline also writes to the destination is left out
	// too: its consumer may hold older changes of it.
	PublishFloor(ctx context.Context, sourceID, pipelineID, destinationID int64, tables []string) (map[string]contracts.Version, error)
	// DeadLetterFloor returns, per table, the oldest version among the
	// destination's dead letters of the table (absent: none). A letter
	// whose version cannot be read counts as the zero version.
	DeadLetterFloor(ctx context.Context, sourceID, destinationID int64, tables []string) (map[string]contracts.Version, error)
}

// GuardObserver records collections; *metrics.Metrics implements it. For
// each source table collected: the tombstones its destination table keeps,
// how many this collection deleted, and the collect floor's commit LSN.
type GuardObserver interface {
	TombstonesCollected(pipelineID, destinationID int64, table string, remaining, collected int64, floorLSN uint64)
}

// ErrNotCollected is returned by Collect when no table could be collected:
// the driver keeps no tombstones, or the runner has no bounds.
var ErrNotCollected = errors.New("tombstones are not collected for this destination")

// TableCollection is the outcome of collecting one table.
type TableCollection struct {
	Table string
	// Bound is the bound the collection used; zero when Skipped.
	Bound contracts.Version
	// Skipped says why the table was not collected ("" when it was).
	Skipped string
	Result  CollectResult
}

type collectRequest struct {
	ctx   context.Context
	reply chan collectReply // buffered
}

type collectReply struct {
	tables []TableCollection
	err    error
}

// Collect runs one tombstone collection between two batches of the runner
// and returns what it did per table. It returns ErrStopped when the runner
// is not running and ErrNotCollected when collection is off.
func (r *Runner) Collect(ctx context.Context) ([]TableCollection, error) {
	if _, ok := r.drv.(TombstoneCollector); !ok || r.cfg.Bounds == nil || len(r.cfg.Tables) == 0 {
		return nil, ErrNotCollected
	}
	req := collectRequest{ctx: ctx, reply: make(chan collectReply, 1)}
	select {
	case r.collects <- req:
	case <-r.stopped:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case rep := <-req.reply:
		return rep.tables, rep.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// collectTicker returns the channel of periodic collections; nil when
// collection is off.
func (r *Runner) collectTicker() (<-chan time.Time, func()) {
	if _, ok := r.drv.(TombstoneCollector); !ok || r.cfg.Bounds == nil || len(r.cfg.Tables) == 0 {
		return nil, func() {}
	}
	t := time.NewTicker(r.cfg.CollectEvery)
	return t.C, t.Stop
}

// collect computes the bound of every table and collects below it. Only
// the applier calls it, between batches: nothing of this runner is being
// applied, and no acknowledgement is on its way (awaitConfirm).
//
// The bound of a table (docs/delivery.md proves it) is the minimum of:
//   - the publish floor: capture's confirmed position, read first, so that
//     everything published after the reads below is at least it;
//   - every message the consumers (every partition's) hold unacked, which
//     must all be this runner's (held batches) with none left undelivered:
//     otherwise, the stream may hold older changes it cannot see (another
//     sink instance may hold a partition), and nothing is collected this
//     time;
//   - the oldest dead letter of the table, read after the consumer so that
//     a change dead-lettered and acked meanwhile is seen in the queue.
func (r *Runner) collect(ctx context.Context) ([]TableCollection, error) {
	r.lastCollect, r.collectDue = time.Now(), false
	behind := r.collectRetries
	r.collectRetries = 0
	coll, ok := r.drv.(TombstoneCollector)
	if !ok || r.cfg.Bounds == nil || len(r.cfg.Tables) == 0 {
		return nil, ErrNotCollected
	}
	r.acks.awaitConfirm()
	floors, err := r.cfg.Bounds.PublishFloor(ctx, r.cfg.SourceID, r.cfg.PipelineID, r.cfg.DestinationID, r.cfg.Tables)
	if err != nil {
		return nil, fmt.Errorf("collect tombstones: publish floor: %w", err)
	}
	heldMin, heldN := r.heldVersions()
	var pending uint64
	var unacked int
	for _, cons := range r.cons {
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("collect tombstones: consumer info: %w", err)
		}
		pending += info.NumPending
		unacked += info.NumAckPending
	}
	if pending > 0 || unacked > heldN {
		// Changes this runner has not seen may be older than anything
		// it holds: wait until it has caught up.
		r.collectDue, r.collectRetries = true, behind+1
		out := make([]TableCollection, len(r.cfg.Tables))
		for i, t := range r.cfg.Tables {
			out[i] = TableCollection{Table: t, Skipped: fmt.Sprintf("consumer not caught up (%d pending, %d unacked, %d held)",
				pending, unacked, heldN)}
		}
		return out, nil
	}
	letters, err := r.cfg.Bounds.DeadLetterFloor(ctx, r.cfg.SourceID, r.cfg.DestinationID, r.cfg.Tables)
	if err != nil {
		return nil, fmt.Errorf("collect tombstones: dead letters: %w", err)
	}
	// Drivers name a destination table after the source table's name
	// alone: source tables of one name share a destination table and its
	// tombstones, so they share one bound.
	var names []string
	groups := map[string][]string{}
	for _, t := range r.cfg.Tables {
		_, name, _ := strings.Cut(t, ".")
		if _, ok := groups[name]; !ok {
			names = append(names, name)
		}
		groups[name] = append(groups[name], t)
	}
	out := make([]TableCollection, 0, len(r.cfg.Tables))
	for _, name := range names {
		var bound contracts.Version
		skipped := ""
		for i, t := range groups[name] {
			floor, ok := floors[t]
			if !ok {
				skipped = "a backfill of " + t + " may still publish, or no bound is known"
				break
			}
			if v, ok := heldMin[t]; ok && v.Less(floor) {
				floor = v
			}
			if v, ok := letters[t]; ok && v.Less(floor) {
				floor = v
			}
			if i == 0 || floor.Less(bound) {
				bound = floor
			}
		}
		if skipped == "" && bound == (contracts.Version{}) {
			skipped = "bound is zero"
		}
		var res CollectResult
		if skipped == "" {
			schema, _, _ := strings.Cut(groups[name][0], ".")
			var err error
			res, err = coll.CollectTombstones(ctx, contracts.Table{Schema: schema, Name: name}, bound)
			if err != nil {
				return out, fmt.Errorf("collect tombstones of %s: %w", name, err)
			}
			if res.Collected > 0 {
				r.log.Info("tombstones collected", "table", name, "collected", res.Collected, "remaining", res.Remaining,
					"bound_lsn", contracts.FormatLSN(res.Floor.LSN), "bound_seq", res.Floor.Seq)
			}
		}
		for _, t := range groups[name] {
			tc := TableCollection{Table: t, Skipped: skipped}
			if skipped == "" {
				tc.Bound, tc.Result = bound, res
				if r.cfg.GuardObserver != nil {
					r.cfg.GuardObserver.TombstonesCollected(r.cfg.PipelineID, r.cfg.DestinationID, t, res.Remaining, res.Collected, res.Floor.LSN)
				}
			}
			out = append(out, tc)
		}
	}
	return out, nil
}

// heldVersions returns the oldest version per table among the changes of
// the messages the runner holds, and how many messages it holds (what
// JetStream counts as unacked). Every change of a held message counts, even
// one already applied: the message is unacked until all are settled. A
// change that is not valid holds back nothing: it is no change, and goes to
// the dead-letter queue (read after) or is dropped.
func (r *Runner) heldVersions() (map[string]contracts.Version, int) {
	msgs := r.held.messages(nil)
	out := map[string]contracts.Version{}
	var changes []contracts.Change
	var errs []error
	for _, m := range msgs {
		var err error
		changes, errs, err = cdc.DecodeMessage(m.Data(), changes[:0], errs[:0])
		if err != nil {
			continue
		}
		for i := range changes {
			if errs[i] != nil {
				continue
			}
			c := &changes[i]
			v, err := c.Version()
			if err != nil {
				continue
			}
			t := c.Source.Schema + "." + c.Source.Table
			if have, ok := out[t]; !ok || v.Less(have) {
				out[t] = v
			}
		}
	}
	return out, len(msgs)
}

// collectRetryEvery is the least time between two collections tried
// because an earlier one found the consumer behind (collectDue); it
// doubles with each retry that finds it behind again (another instance
// on the consumer may hold messages for long), up to CollectEvery.
const collectRetryEvery = time.Second

// collectRetry fires when a collection is due again: an earlier one found
// the consumer behind, the last batch caught up, and collectRetryEvery has
// passed since the last try. nil (never) otherwise.
func (r *Runner) collectRetry() <-chan time.Time {
	if !r.collectDue || !r.caughtUp {
		return nil
	}
	wait := collectRetryEvery << min(max(r.collectRetries-1, 0), 16)
	return time.After(time.Until(r.lastCollect.Add(min(wait, r.cfg.CollectEvery))))
}

// runCollect serves a periodic collection, logging instead of returning.
//
// A collection (periodic or asked for) that finds the consumer behind
// sets collectDue, and is tried again after the first batch that leaves
// nothing pending: a pipeline rarely idle at the tick would otherwise
// keep its tombstones for many intervals.
func (r *Runner) runCollect(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	if _, err := r.collect(cctx); err != nil && ctx.Err() == nil {
		r.log.Warn("collect tombstones failed; tried again at the next interval", "error", err)
	}
}

func (r *Runner) serveCollect(ctx context.Context, req collectRequest) collectReply {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(req.ctx, cancel)()
	tables, err := r.collect(cctx)
	if err != nil && ctx.Err() != nil {
		err = ErrStopped
	}
	return collectReply{tables: tables, err: err}
}
